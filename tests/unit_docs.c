/*
 * The documentation cannot drift from the key table of src/config.c
 * (Check). Every key of the table must be documented, with the table's
 * default, in both places operators read:
 *
 * - README.md, "Configuration": under a heading "### `[SECTION]` ...", one
 *   table row per key: "| `key` | default | meaning |" (backticks around
 *   the default are optional);
 * - etc/miniproxy.ini.5: under ".SH [SECTION]", one entry per key: ".TP",
 *   then ".B key", then, before the next entry, a line "Default:" followed
 *   by ".B value" or ".BR value ." (a value with spaces in double quotes).
 *
 * and neither may document a key the table does not have. SECTION is
 * "proxy", "admin" or "upstream NAME". The bundled configurations must
 * survive a dump: `miniproxyd -T` of each is a file that `-t` accepts and
 * that loads to the same configuration.
 *
 * doc/design.md's module map names every file of src/ (and include/clock.h,
 * which has no .c), so the architecture document cannot forget a module.
 * No file the project ships points readers outside the repository.
 *
 * The files are read relative to the repository root, where `make test`
 * runs the suites.
 */
#include "config.h"
#include "testlib.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DOCS 256

struct doc_entry {
    char section[32];
    char name[64];
    char deflt[256];
    bool has_default;
};

struct doc_set {
    struct doc_entry e[MAX_DOCS];
    size_t n;
};

/* Copies [<b>, <e>) into <out> without surrounding blanks and backticks. */
static void
trim_copy(char *out, size_t outlen, const char *b, const char *e)
{
    while (b < e && (*b == ' ' || *b == '`'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '`' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    snprintf(out, outlen, "%.*s", (int)(e - b), b);
}

/* "### `[upstream NAME]` (one per group...)" or ".SH [proxy]" -> "upstream NAME", "proxy". */
static bool
section_of(const char *line, char *out, size_t outlen)
{
    const char *b = strchr(line, '['), *e;

    if (b == NULL || (e = strchr(b, ']')) == NULL)
        return false;
    snprintf(out, outlen, "%.*s", (int)(e - b - 1), b + 1);
    return strcmp(out, "proxy") == 0 || strcmp(out, "admin") == 0 || strcmp(out, "tls") == 0 ||
           strcmp(out, "upstream NAME") == 0 || strcmp(out, "route NAME") == 0;
}

static struct doc_entry *
add_entry(struct doc_set *set, const char *section, const char *name)
{
    struct doc_entry *d;

    ck_assert_uint_lt(set->n, MAX_DOCS);
    d = &set->e[set->n++];
    memset(d, 0, sizeof(*d));
    snprintf(d->section, sizeof(d->section), "%s", section);
    snprintf(d->name, sizeof(d->name), "%s", name);
    return d;
}

static FILE *
open_doc(const char *path)
{
    FILE *f = fopen(path, "r");

    ck_assert_msg(f != NULL, "%s: cannot open (the suites run from the repository root)", path);
    return f;
}

static void
parse_readme(const char *path, struct doc_set *set)
{
    FILE *f = open_doc(path);
    char line[4096], section[32] = "", cell[128];

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "#", 1) == 0) {
            if (strncmp(line, "### ", 4) != 0 || !section_of(line, section, sizeof(section)))
                section[0] = '\0';
            continue;
        }
        if (section[0] == '\0' || strncmp(line, "| `", 3) != 0)
            continue;
        /* | `key` | default | meaning | */
        char *c1 = line + 1, *c2 = strchr(c1, '|'), *c3 = c2 != NULL ? strchr(c2 + 1, '|') : NULL;

        ck_assert_msg(c3 != NULL, "%s: [%s] a row without three cells: %s", path, section, line);
        trim_copy(cell, sizeof(cell), c1, c2);
        struct doc_entry *d = add_entry(set, section, cell);
        trim_copy(d->deflt, sizeof(d->deflt), c2 + 1, c3);
        d->has_default = true;
    }
    fclose(f);
}

/* ".B value", ".BR value ." or ".B \"two words\"" -> "value", with "\-" as "-". */
static bool
man_value(const char *line, char *out, size_t outlen)
{
    const char *p, *e;
    size_t n = 0;

    if (strncmp(line, ".BR ", 4) == 0)
        p = line + 4;
    else if (strncmp(line, ".B ", 3) == 0)
        p = line + 3;
    else
        return false;
    if (*p == '"') {
        p++;
        e = strchr(p, '"');
    } else {
        e = p + strcspn(p, " \n");
    }
    if (e == NULL)
        return false;
    for (; p < e && n + 1 < outlen; p++) {
        if (p[0] == '\\' && p + 1 < e && p[1] == '-')
            p++;
        out[n++] = *p;
    }
    out[n] = '\0';
    return true;
}

static void
parse_man(const char *path, struct doc_set *set)
{
    FILE *f = open_doc(path);
    char line[4096], section[32] = "", name[64];
    struct doc_entry *cur = NULL;
    bool after_tp = false, after_default = false;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, ".SH ", 4) == 0) {
            if (!section_of(line, section, sizeof(section)))
                section[0] = '\0';
            cur = NULL;
            continue;
        }
        if (section[0] == '\0')
            continue;
        if (after_tp && man_value(line, name, sizeof(name)))
            cur = add_entry(set, section, name);
        if (after_default && cur != NULL) {
            ck_assert_msg(man_value(line, cur->deflt, sizeof(cur->deflt)),
                          "%s: [%s] %s: \"Default:\" not followed by .B or .BR: %s", path, section,
                          cur->name, line);
            cur->has_default = true;
        }
        after_tp = strcmp(line, ".TP\n") == 0;
        after_default = strcmp(line, "Default:\n") == 0;
    }
    fclose(f);
}

static const struct doc_entry *
find_entry(const struct doc_set *set, const char *section, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->e[i].section, section) == 0 && strcmp(set->e[i].name, name) == 0)
            return &set->e[i];
    return NULL;
}

/* Both ways: every row documented with its default, every documented key a row. */
static void
check_docs(const char *path, const struct doc_set *set)
{
    struct cfg_key_doc k;
    size_t i;

    ck_assert_uint_gt(set->n, 0);
    for (i = 0; cfg_key_doc(i, &k) == 0; i++) {
        const struct doc_entry *d = find_entry(set, k.section, k.name);

        ck_assert_msg(d != NULL, "%s: [%s] %s is not documented", path, k.section, k.name);
        ck_assert_msg(d->has_default, "%s: [%s] %s: no default given", path, k.section, k.name);
        ck_assert_msg(strcmp(d->deflt, k.default_doc) == 0,
                      "%s: [%s] %s: documented default \"%s\", the code's is \"%s\"", path,
                      k.section, k.name, d->deflt, k.default_doc);
    }
    ck_assert_uint_gt(i, 40);
    for (size_t j = 0; j < set->n; j++) {
        bool known = false;

        for (i = 0; cfg_key_doc(i, &k) == 0; i++)
            known |=
                strcmp(set->e[j].section, k.section) == 0 && strcmp(set->e[j].name, k.name) == 0;
        ck_assert_msg(known, "%s: [%s] %s is documented but is no key", path, set->e[j].section,
                      set->e[j].name);
        for (size_t m = 0; m < j; m++)
            ck_assert_msg(strcmp(set->e[m].section, set->e[j].section) != 0 ||
                              strcmp(set->e[m].name, set->e[j].name) != 0,
                          "%s: [%s] %s is documented twice", path, set->e[j].section,
                          set->e[j].name);
    }
}

START_TEST(test_readme)
{
    static struct doc_set set;

    set.n = 0;
    parse_readme("README.md", &set);
    check_docs("README.md", &set);
}
END_TEST

START_TEST(test_man_page)
{
    static struct doc_set set;

    set.n = 0;
    parse_man("etc/miniproxy.ini.5", &set);
    check_docs("etc/miniproxy.ini.5", &set);
}
END_TEST

/* Every row has a default documented, and one line of doc. */
START_TEST(test_rows_documented)
{
    struct cfg_key_doc k;

    for (size_t i = 0; cfg_key_doc(i, &k) == 0; i++) {
        ck_assert_msg(k.default_doc != NULL && k.default_doc[0] != '\0', "[%s] %s: no default",
                      k.section, k.name);
        ck_assert_msg(k.doc != NULL && k.doc[0] != '\0', "[%s] %s: no doc", k.section, k.name);
        ck_assert_msg(strchr(k.doc, '\n') == NULL, "[%s] %s: doc of more than a line", k.section,
                      k.name);
    }
}
END_TEST

struct text {
    char buf[16384];
    size_t len;
};

static void
collect(void *arg, const char *line)
{
    struct text *t = arg;
    int n = snprintf(t->buf + t->len, sizeof(t->buf) - t->len, "%s\n", line);

    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt(t->len + (size_t)n, sizeof(t->buf));
    t->len += (size_t)n;
}

static void
ignore_line(void *arg, const char *line)
{
    (void)arg, (void)line;
}

static const char *const bundled[] = {"miniproxy.ini", "etc/miniproxy.ini"};

/* In process: dump, load the dump, dump again; the same lines, no difference. */
START_TEST(test_bundled_dump)
{
    static struct text d1, d2;
    char err[1024];
    struct config *a = cfg_load(bundled[_i], err, sizeof(err)), *b;

    ck_assert_msg(a != NULL, "%s", err);
    d1.len = d2.len = 0;
    cfg_dump(a, collect, &d1);
    b = cfg_load_string(d1.buf, bundled[_i], err, sizeof(err));
    ck_assert_msg(b != NULL, "the dump of %s does not load: %s\n%s", bundled[_i], err, d1.buf);
    cfg_dump(b, collect, &d2);
    ck_assert_str_eq(d1.buf, d2.buf);
    ck_assert_int_eq(cfg_diff(a, b, ignore_line, NULL), 0);
    cfg_free(a);
    cfg_free(b);
}
END_TEST

/* The binary: -T prints the dump on stdout; -t accepts it. */
START_TEST(test_bundled_T)
{
    static char out[32768];
    char dir[] = "/tmp/mp-docs-XXXXXX", path[64], args[256];
    int rc;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/dump.ini", dir);
    snprintf(args, sizeof(args), "-T -c %s 2>/dev/null >%s && cat %s", bundled[_i], path, path);
    rc = tl_sh(out, sizeof(out), "%s/miniproxyd %s", tl_build(), args);
    ck_assert_msg(rc == 0, "-T failed (%d): %s", rc, out);
    ck_assert_msg(strstr(out, "[proxy]\nlisten = ") != NULL, "%s", out);
    ck_assert_ptr_null(strstr(out, "test is successful")); /* that goes to stderr */
    snprintf(args, sizeof(args), "-t -c %s", path);
    rc = tl_proxy_cmd(args, out, sizeof(out));
    ck_assert_msg(rc == 0, "-t on the dump of %s failed: %s", bundled[_i], out);
    ck_assert_ptr_nonnull(strstr(out, "test is successful"));
    unlink(path);
    rmdir(dir);
}
END_TEST

/* Reads <path> whole into a malloc'd NUL-terminated buffer. */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: cannot open", path);
    static const size_t cap = 1 << 20;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t n = fread(b, 1, cap - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

START_TEST(test_design_names_every_module)
{
    char *doc = slurp("doc/design.md");
    DIR *d = opendir("src");
    struct dirent *e;
    size_t seen = 0;
    char want[300];

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0)
            continue;
        snprintf(want, sizeof(want), "| `%s` |", e->d_name);
        ck_assert_msg(strstr(doc, want) != NULL,
                      "doc/design.md: the module map has no row for src/%s", e->d_name);
        seen++;
    }
    closedir(d);
    ck_assert_msg(seen > 10, "read only %zu files of src/", seen);
    ck_assert_msg(strstr(doc, "| `clock.h` |") != NULL, "doc/design.md: no row for clock.h");
    free(doc);
}
END_TEST

/* Nothing the project ships sends a reader to a file outside the repository. */
START_TEST(test_no_outside_references)
{
    static char out[8192];
    int rc = tl_sh(out, sizeof(out),
                   "grep -rIn -e '\\.\\./shared' README.md doc etc src include tests scripts "
                   "Makefile miniproxy.ini; true");
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(out[0] == '\0', "files point outside the repository:\n%s", out);
}
END_TEST

static Suite *
docs_suite(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("docs");

    tcase_add_test(tc, test_readme);
    tcase_add_test(tc, test_man_page);
    tcase_add_test(tc, test_rows_documented);
    tcase_add_loop_test(tc, test_bundled_dump, 0, 2);
    tcase_add_loop_test(tc, test_bundled_T, 0, 2);
    tcase_add_test(tc, test_design_names_every_module);
    tcase_add_test(tc, test_no_outside_references);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(docs_suite());
}
