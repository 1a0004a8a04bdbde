/*
 * shm: the shared table. See shm.h.
 */
#include "shm.h"

#include <sys/mman.h>

struct shm *
shm_create(const struct config *cfg, uint32_t generation)
{
    struct shm *shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
    if (shm == MAP_FAILED)
        return NULL;
    /* Anonymous mappings are zero-filled: every counter and state starts at 0. */
    shm->magic = SHM_MAGIC;
    shm->generation = generation;
    shm->nworkers = cfg->workers;
    return shm;
}

void
shm_destroy(struct shm *shm)
{
    if (shm != NULL)
        munmap(shm, sizeof(*shm));
}
