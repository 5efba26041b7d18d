/* fuzz_import.c: libFuzzer target for the CSV importers (`trail import taobao|movielens`), whose
 * row parsers are static: through their entry points on temporary files. Built and run by
 * tests/fuzz.sh. The first byte picks the importer (even: taobao, odd: movielens); for movielens
 * the rest is movies.csv, a form feed, then ratings.csv. Every event an import writes must decode
 * (the importers write only what `trail encode --input` accepts). */
#include "core_err.h"
#include "sch_event.h"
#include "enc_cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[256];

static void put(const char *name, const uint8_t *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) abort();
}

static void cleanup(void) {
    static const char *names[] = {"in.csv", "movies.csv", "out.jsonl"};
    char path[512];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/trail-fuzz-import-%ld", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        if (mkdir(g_dir, 0700) != 0) abort();
        atexit(cleanup);
    }
    if (size < 1) return 0;
    int movielens = data[0] & 1;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (movielens) {
        const uint8_t *ff = memchr(p, '\f', n);
        size_t mn = ff ? (size_t)(ff - p) : 0;
        put("movies.csv", p, mn);
        if (ff) {
            p = ff + 1;
            n -= mn + 1;
        }
    }
    put("in.csv", p, n);
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/in.csv", g_dir);
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    char *argv[] = {"import", in, "--out", out, NULL};
    int rc = movielens ? enc_cmd_import_movielens(4, argv) : enc_cmd_import_taobao(4, argv);
    if (rc != 0 && rc != 1) abort();
    if (rc == 0) {
        sch_reader *r;
        char err[256];
        if (sch_reader_open(&r, out, 4096, err, sizeof err) != CORE_OK) abort();
        const char *rec;
        size_t len;
        uint64_t recno;
        int got;
        while ((got = sch_reader_next(r, &rec, &len, &recno)) == 1) {
            sch_event ev;
            if (sch_event_decode(&ev, rec, len, err, sizeof err) != CORE_OK) abort();
        }
        if (got != 0) abort();
        sch_reader_close(r);
    }
    return 0;
}
