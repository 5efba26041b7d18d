/* fuzz_worker_config.c: libFuzzer target for the encoder worker's --config parser (key=value
 * lines; static in pipeline/pipe_encode.c), through `trail encode --brokers ...`'s entry point
 * pipe_cmd_encode on a temporary file. Built and run by tests/fuzz.sh. --model on the command line
 * (which overrides the file) names a file that does not exist, so a config that parses stops at
 * the model load: nothing connects, opens a store or serves metrics. The command must return 1
 * or 2, never crash, leak or read out of bounds. */
#include "pipe_cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/trail-fuzz-config-%ld.conf", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
    char model[] = "/nonexistent/trail-fuzz/model.trail";
    char *argv[] = {"encode", "--config", g_path, "--model", model, NULL};
    int rc = pipe_cmd_encode(5, argv);
    if (rc != 1 && rc != 2) abort();
    unlink(g_path);
    return 0;
}
