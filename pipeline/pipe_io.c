/* pipe_io.c: `trail produce` (an event file into a topic, keyed by user id) and `trail record` (a
 * topic range into an event file that `trail encode --input` replays).
 *
 * Both validate every event with the schema's decoder: produce refuses malformed records (counted,
 * reported with file and line) unless --no-validate asks to send them as they are (to exercise the
 * dead-letter route); record skips what it cannot decode (counted, reported with partition and
 * offset), so a recorded file is always clean input.
 */
#include "core_alloc.h"
#include "core_args.h"
#include "core_err.h"
#include "core_log.h"
#include "core_util.h"
#include "pipe_kafka.h"
#include "pipe_worker.h"
#include "sch_event.h"
#include "pipe_cli.h"

#include <stdatomic.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int g_stop;

static void sleep_ns(int64_t ns) {
    if (ns <= 0) return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

const core_cmd *const pipe_cmds[] = {&pipe_broker_cmd, &pipe_produce_cmd, &pipe_record_cmd,
                                     &pipe_bench_cmd, NULL};

// ---------------------------------------------------------------------------------------------
// trail produce

const core_cmd pipe_produce_cmd = {
    "produce", "send an event file into a Kafka topic, keyed by user", pipe_cmd_produce,
    "Sends each event of FILE (JSON lines or binary; '-' is stdin) as one message keyed by its\n"
    "decimal user id. Malformed records are reported and not sent. Delivery is bounded: a\n"
    "message the cluster has not acknowledged within message.timeout.ms (30000 unless -X sets\n"
    "it; 0 waits forever) fails. Exit status 1 if any sent event was not delivered, 2 on a\n"
    "usage error.\n",
    NULL};

int pipe_cmd_produce(int argc, char **argv) {
    const char *brokers = NULL, *topic = NULL, *input = NULL;
    pipe_partitioner part = PIPE_PARTITIONER_DEFAULT;
    double rate = 0;
    int no_validate = 0, rc = 1;
    char errstr[512];
    pipe_props props = {0};
    pipe_producer *p = NULL;
    sch_reader *r = NULL;
    const core_opt opts[] = {
        CORE_OPT_NEED("brokers", &brokers, "B", "bootstrap servers, host:port[,host:port]"),
        CORE_OPT_NEED("topic", &topic, "T", "the topic"),
        CORE_OPT_NEED("input", &input, "FILE", "event file, JSON lines or binary ('-' is stdin)"),
        {CORE_OPT_ROW("rate", CORE_OPT_DOUBLE, &rate, "R", "events per second"), .dmin = 1,
         .dmax = 1e9, .def = "as fast as possible"},
        CORE_OPT_FLG("no-validate", &no_validate,
                     "send every record as is, keyed by user id when it decodes"),
        {CORE_OPT_ROW("partitioner", CORE_OPT_FUNC, &part, "P",
                      "librdkafka's partitioner name (murmur2_random, as Java clients;\n"
                      "consistent_random, as librdkafka clients; consistent, murmur2, fnv1a,\n"
                      "fnv1a_random; random spreads a user over partitions, which workers\n"
                      "dead-letter); workers must be given the same"),
         .fn = pipe_opt_partitioner, .def = "murmur2_random"},
        CORE_OPT_LOG_LEVEL,
        PIPE_OPT_PROPS(&props, "librdkafka producer property (kafka. and producer. prefixes\n"
                               "optional); partitioner and a bootstrap.servers other than\n"
                               "--brokers are refused"),
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&pipe_produce_cmd, opts, argc, argv)) != CORE_OPTS_GO) {
        pipe_props_free(&props);
        return rc;
    }
    rc = 1;
    int validate = !no_validate;
    if (pipe_props_check(&props, PIPE_CLIENT_PRODUCER, brokers, errstr, sizeof errstr)) {
        pipe_props_free(&props);
        return core_cmd_usage(&pipe_produce_cmd, "-X %s", errstr);
    }
    if (pipe_props_add(&props, "partitioner", pipe_partitioner_name(part))) {
        fprintf(stderr, "trail: produce: out of memory\n");
        goto out;
    }
    /* the producer's own default (0: retry forever) hangs on a dead broker; bound it here */
    if (!pipe_props_get(&props, "message.timeout.ms") &&
        pipe_props_add(&props, "message.timeout.ms", "30000")) {
        fprintf(stderr, "trail: produce: out of memory\n");
        goto out;
    }
    const char *mto = pipe_props_get(&props, "message.timeout.ms");
    if (sch_reader_open(&r, input, SCH_MAX_JSON_BYTES, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: produce: %s\n", errstr);
        goto out;
    }
    if (pipe_producer_new(&p, brokers, &props, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: produce: %s\n", errstr);
        goto out;
    }
    pipe_stop_on_signals(&g_stop);
    uint64_t sent = 0, rejected = 0, recno = 0;
    int64_t t0 = core_now_ns();
    for (;;) {
        const char *rec;
        size_t n;
        int k = sch_reader_next(r, &rec, &n, &recno);
        if (k == 0 || g_stop) break;
        if (k == CORE_EIO) {
            fprintf(stderr, "trail: produce: %s: read error\n", input);
            goto out;
        }
        if (k == CORE_EFORMAT) { /* a truncated binary tail ends the file */
            fprintf(stderr, "trail: produce: %s: record %" PRIu64 ": truncated binary record\n",
                    input, recno + 1);
            rejected++;
            break;
        }
        sch_event ev;
        char err[256] = "";
        int drc = CORE_ETOOBIG;
        if (k == CORE_ETOOBIG)
            snprintf(err, sizeof err, "record longer than %d bytes", SCH_MAX_JSON_BYTES);
        else
            drc = sch_event_decode(&ev, rec, n, err, sizeof err);
        if (drc) {
            rejected++;
            if (rejected <= 20)
                fprintf(stderr, "trail: produce: %s:%" PRIu64 ": rejected: %s\n", input, recno,
                        err);
            if (validate || k != 1) continue;
        }
        char key[24];
        int klen = drc ? 0 : snprintf(key, sizeof key, "%" PRIu64, ev.user_id);
        if (pipe_producer_send(p, topic, -1, klen ? key : NULL, (size_t)klen, rec, n, NULL, 0, 0,
                               &g_stop))
            break;
        sent++;
        if (rate > 0)
            sleep_ns((int64_t)((double)sent * 1e9 / rate) - (core_now_ns() - t0));
        else if ((sent & 1023) == 0)
            pipe_producer_poll(p, 0);
    }
    uint64_t delivered, failed;
    for (int64_t tw = core_now_ns();;) { /* wait for the outcome of every message, saying so */
        int frc = pipe_producer_flush(p, 1000, &g_stop);
        if (frc == CORE_ESTOPPED) {
            fprintf(stderr, "trail: produce: interrupted\n");
            break;
        }
        if (frc == CORE_OK) break;
        pipe_producer_counts(p, &delivered, &failed);
        fprintf(stderr,
                "trail: produce: waiting %.0f s for %" PRIu64 " undelivered of %" PRIu64
                " sent (%" PRIu64 " delivered, %" PRIu64 " failed; message.timeout.ms=%s)\n",
                (double)(core_now_ns() - tw) / 1e9, sent - delivered - failed, sent, delivered,
                failed, mto);
    }
    pipe_producer_counts(p, &delivered, &failed);
    double secs = (double)(core_now_ns() - t0) / 1e9;
    if (rejected > 20)
        fprintf(stderr, "trail: produce: ... %" PRIu64 " rejects in all\n", rejected);
    printf("produced %" PRIu64 " events to %s (delivered %" PRIu64 ", failed %" PRIu64
           ", rejected %" PRIu64 ") in %.2f s\n",
           sent, topic, delivered, failed, rejected, secs);
    rc = (failed || delivered != sent || g_stop) ? 1 : 0;
    if (delivered != sent)
        fprintf(stderr,
                "trail: produce: %" PRIu64 " of %" PRIu64 " events were not delivered to %s "
                "at %s (%" PRIu64 " failed, each reason logged above; is the cluster up?)\n",
                sent - delivered, sent, topic, brokers, failed);
out:
    pipe_producer_destroy(p);
    sch_reader_close(r);
    pipe_props_free(&props);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// trail record

/* --from: beginning or an offset */
static int parse_from(const char *v, void *from, char *err, size_t n) {
    if (!strcmp(v, "beginning")) return *(int64_t *)from = PIPE_OFFSET_BEGINNING, 0;
    if (!core_scan_i64(v, 0, INT64_MAX, from, err, n)) return 0;
    snprintf(err, n, "'%s' is neither 'beginning' nor an offset in [0, %lld]", v,
             (long long)INT64_MAX);
    return 1;
}

static const char *const to_end[] = {"end", NULL};

const core_cmd pipe_record_cmd = {
    "record", "write a Kafka topic range to an event file", pipe_cmd_record,
    "Writes every event of the topic's partitions from --from up to the end offsets seen at\n"
    "start, as JSON lines (or --binary) that `trail encode --input` reads. Undecodable\n"
    "messages are reported and skipped.\n",
    NULL};

int pipe_cmd_record(int argc, char **argv) {
    const char *brokers = NULL, *topic = NULL, *outpath = NULL;
    int64_t from = PIPE_OFFSET_BEGINNING;
    int binary = 0, rc = 1, np = 0, to = 0;
    char errstr[512];
    pipe_props props = {0};
    pipe_consumer *cons = NULL;
    sch_writer *w = NULL;
    int32_t *parts = NULL;
    int64_t *start = NULL, *end = NULL;
    const core_opt opts[] = {
        CORE_OPT_NEED("brokers", &brokers, "B", "bootstrap servers, host:port[,host:port]"),
        CORE_OPT_NEED("topic", &topic, "T", "the topic"),
        CORE_OPT_NEED("out", &outpath, "FILE", "the event file to write"),
        {CORE_OPT_ROW("from", CORE_OPT_FUNC, &from, "beginning|OFFSET",
                      "first offset of each partition"),
         .fn = parse_from, .def = "beginning"},
        {CORE_OPT_ROW("to", CORE_OPT_ENUM, &to, NULL, "the end offsets seen at start"),
         .choices = to_end},
        CORE_OPT_FLG("binary", &binary, "write the binary event file instead of JSON lines"),
        CORE_OPT_LOG_LEVEL,
        PIPE_OPT_PROPS(&props, "librdkafka consumer property"),
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&pipe_record_cmd, opts, argc, argv)) != CORE_OPTS_GO) {
        pipe_props_free(&props);
        return rc;
    }
    rc = 1;
    if (pipe_props_check(&props, PIPE_CLIENT_CONSUMER, brokers, errstr, sizeof errstr)) {
        pipe_props_free(&props);
        return core_cmd_usage(&pipe_record_cmd, "-X %s", errstr);
    }
    if (pipe_consumer_new(&cons, brokers, NULL, topic, &props, NULL, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: record: %s\n", errstr);
        goto out;
    }
    if (pipe_consumer_partition_count(cons, topic, 10000, &np)) {
        fprintf(stderr, "trail: record: no metadata for topic %s\n", topic);
        goto out;
    }
    parts = core_calloc((size_t)np, sizeof(*parts));
    start = core_calloc((size_t)np, sizeof(*start));
    end = core_calloc((size_t)np, sizeof(*end));
    if (!parts || !start || !end) goto out;
    int open_parts = 0;
    for (int i = 0; i < np; i++) {
        int64_t lo, hi;
        parts[i] = i;
        if (pipe_consumer_watermarks(cons, topic, i, 10000, &lo, &hi)) goto out;
        start[i] = from == PIPE_OFFSET_BEGINNING ? lo : (from > lo ? from : lo);
        end[i] = hi;
        if (start[i] < end[i]) open_parts++;
    }
    if (sch_writer_open(&w, outpath, binary, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: record: %s\n", errstr);
        goto out;
    }
    if (open_parts && pipe_consumer_assign(cons, topic, parts, start, np)) goto out;
    pipe_stop_on_signals(&g_stop);
    uint64_t written = 0, skipped = 0;
    while (open_parts > 0 && !g_stop) {
        pipe_msg m;
        if (!pipe_consumer_poll(cons, 500, &m)) continue;
        if (m.err) {
            if (m.err_fatal) goto out;
            CORE_LOG(CORE_LOG_WARNING, "record: kafka-error partition=%d err=\"%s\"",
                     (int)m.partition, m.errstr);
            continue;
        }
        if (m.partition < 0 || m.partition >= np || m.offset >= end[m.partition]) continue;
        sch_event ev;
        char err[256];
        if (sch_event_decode(&ev, m.payload, m.len, err, sizeof err)) {
            skipped++;
            fprintf(stderr, "trail: record: %s partition %d offset %" PRId64 ": skipped: %s\n",
                    topic, (int)m.partition, m.offset, err);
        } else if (sch_writer_put(w, &ev)) {
            fprintf(stderr, "trail: record: write %s failed\n", outpath);
            goto out;
        } else {
            written++;
        }
        if (m.offset + 1 >= end[m.partition]) open_parts--;
    }
    int wrc = sch_writer_close(w);
    w = NULL;
    if (wrc) {
        fprintf(stderr, "trail: record: closing %s: %s\n", outpath, core_strerror(wrc));
        goto out;
    }
    printf("recorded %" PRIu64 " events from %s (%d partitions, skipped %" PRIu64 ") to %s\n",
           written, topic, np, skipped, outpath);
    rc = g_stop ? 1 : 0;
out:
    if (w) sch_writer_close(w);
    pipe_consumer_close(cons);
    core_free(parts);
    core_free(start);
    core_free(end);
    pipe_props_free(&props);
    return rc;
}
