/*
 * privs: dropping root privileges in a child. The contract is in
 * include/privs.h.
 */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct passwd *
privs_lookup(const char *user, int *err)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    *err = 0;
    if (pw == NULL && errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF &&
        errno != EPERM)
        *err = errno;
    return pw;
}

int
privs_drop(const char *user, char *err, size_t errlen)
{
    struct passwd *pw;
    uid_t uid;
    gid_t gid;

    if (user == NULL || geteuid() != 0)
        return 0;
    int lookup_err;
    pw = privs_lookup(user, &lookup_err);
    if (pw == NULL) {
        if (lookup_err != 0)
            snprintf(err, errlen, "user %s: cannot look it up: %s", user, strerror(lookup_err));
        else
            snprintf(err, errlen, "user %s: no such user", user);
        return -1;
    }
    /* *pw is static storage that initgroups() may reuse */
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    if (uid == 0) {
        snprintf(err, errlen, "user %s: has uid 0, so no privilege would be dropped", user);
        return -1;
    }
    if (initgroups(user, gid) == -1) {
        snprintf(err, errlen, "user %s: initgroups: %s", user, strerror(errno));
        return -1;
    }
    if (setgid(gid) == -1) {
        snprintf(err, errlen, "user %s: setgid(%lu): %s", user, (unsigned long)gid,
                 strerror(errno));
        return -1;
    }
    if (setuid(uid) == -1) {
        snprintf(err, errlen, "user %s: setuid(%lu): %s", user, (unsigned long)uid,
                 strerror(errno));
        return -1;
    }
    if (setuid(0) != -1) {
        snprintf(err, errlen, "user %s: root could be regained after setuid(%lu)", user,
                 (unsigned long)uid);
        return -1;
    }
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
        snprintf(err, errlen, "user %s: ids not all changed (uid %lu euid %lu gid %lu egid %lu)",
                 user, (unsigned long)getuid(), (unsigned long)geteuid(), (unsigned long)getgid(),
                 (unsigned long)getegid());
        return -1;
    }
    return 0;
}
