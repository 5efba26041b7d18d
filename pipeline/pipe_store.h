/* pipe_store.h: the consume loop's sink over an enc_store (LMDB): begin/apply/set_offset/commit map
 * to enc_batch_*, get_offset to enc_store_get_offset. */
#ifndef TRAIL_PIPE_STORE_H
#define TRAIL_PIPE_STORE_H

#include "enc_store.h"
#include "pipe_worker.h"

typedef struct pipe_store_sink {
    enc_store *st;
    enc_batch *b; /* the open batch, or NULL */
} pipe_store_sink;

/** @brief Fill *out with a sink writing to st; deferred: st was opened with defer_sums, and the
 *  sink's catch_up runs its tier 2. @remark ss and st must outlive the sink's use. */
void pipe_store_sink_init(pipe_store_sink *ss, enc_store *st, int deferred, pipe_sink *out);

#endif
