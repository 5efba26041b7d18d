/* core_err.h: the project's error codes and their descriptions.
 *
 * Library functions return CORE_OK (0) or a negative CORE_E* code in -1000..-1099, which stays
 * clear of LMDB's -30799..-30779 and librdkafka's -200.. range. core_strerror() describes these
 * codes and positive errno values. LMDB's own codes never reach it: the encoder translates each
 * mdb_* result where it is called (enc_store.c) and names LMDB's error in its log line.
 */
#ifndef TRAIL_CORE_ERR_H
#define TRAIL_CORE_ERR_H

enum {
    CORE_OK = 0,
    CORE_ENOMEM = -1000,    /* an allocation failed */
    CORE_EINVAL = -1001,    /* an argument or value is out of its documented range */
    CORE_EIO = -1002,       /* a read or write on a file failed (errno is logged) */
    CORE_EFORMAT = -1003,   /* input bytes do not follow the format they claim */
    CORE_ECHECKSUM = -1004, /* a checksum did not match: truncated or corrupt file */
    CORE_EVERSION = -1005,  /* a format or model version this build does not accept */
    CORE_ENOTFOUND = -1006, /* the key (user, offset, file) does not exist */
    CORE_ESTORE = -1007,    /* the LMDB store failed; the log names the LMDB error */
    CORE_EFULL = -1008,     /* the store's map is full and may not grow further */
    CORE_EKAFKA = -1009,    /* librdkafka reported a fatal error */
    CORE_ETOOBIG = -1010,   /* a record, body or request is larger than its limit */
    CORE_EMISMATCH = -1011, /* a model and a store (or two models) disagree on their encoding */
    CORE_ESTOPPED = -1012,  /* the operation was interrupted by a stop request */
    CORE_ERANGE = -1013,    /* a number is out of its allowed range */
    CORE_EBUSY = -1014,     /* the same operation is already in progress (a reload) */
};

/** @brief Describe a return code: CORE_E* or a positive errno (the encoder names LMDB's own).
 *  @return a static string; never NULL. */
const char *core_strerror(int rc);

#endif
