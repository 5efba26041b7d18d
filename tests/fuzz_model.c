/* fuzz_model.c: libFuzzer target for the model file loader (mdl_model_load), through a temporary
 * file (the loader reads a path). Built and run by tests/fuzz.sh. Each input is loaded as is, then
 * again with its trailing XXH3-64 made right, so mutations reach the header, config and tensor
 * table checks behind the checksum. A loaded model must have a config mdl_config_check accepts;
 * a refused file a documented code and a message. */
#include "core_err.h"
#include "mdl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

static void load(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    mdl_model *m = NULL;
    char err[512];
    err[0] = 0;
    int rc = mdl_model_load(&m, g_path, err, sizeof err);
    if (rc == CORE_OK) {
        if (!m || mdl_config_check(&m->cfg, err, sizeof err) != CORE_OK) abort();
        mdl_model_destroy(m);
    } else {
        if (m || !err[0] || !memchr(err, 0, sizeof err)) abort();
        if (rc != CORE_EFORMAT && rc != CORE_EVERSION && rc != CORE_ECHECKSUM && rc != CORE_ENOMEM)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/trail-fuzz-model-%ld.trail", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
    }
    load(data, size);
    /* the same bytes with their checksum made right, so mutations reach the checks behind it
     * (mdl_model_load compares the size the header's config implies with the file's before it
     * allocates anything, so a huge config in a small file costs nothing) */
    if (size >= 8) {
        uint8_t *copy = malloc(size);
        if (!copy) abort();
        memcpy(copy, data, size);
        uint64_t sum = XXH3_64bits(copy, size - 8);
        memcpy(copy + size - 8, &sum, 8);
        load(copy, size);
        free(copy);
    }
    unlink(g_path);
    return 0;
}
