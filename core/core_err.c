/* core_err.c: descriptions of CORE_E* codes and errno values. LMDB's codes never get here: the
 * encoder translates them at each call (enc_store.c, lmdb_err) and names them itself. */
#include "core_err.h"

#include <string.h>

const char *core_strerror(int rc) {
    switch (rc) {
    case CORE_OK:
        return "success";
    case CORE_ENOMEM:
        return "out of memory";
    case CORE_EINVAL:
        return "invalid argument";
    case CORE_EIO:
        return "input/output error";
    case CORE_EFORMAT:
        return "malformed input";
    case CORE_ECHECKSUM:
        return "checksum mismatch (truncated or corrupt)";
    case CORE_EVERSION:
        return "unsupported version";
    case CORE_ENOTFOUND:
        return "not found";
    case CORE_ESTORE:
        return "state store error";
    case CORE_EFULL:
        return "state store is full";
    case CORE_EKAFKA:
        return "kafka error";
    case CORE_ETOOBIG:
        return "too large";
    case CORE_EMISMATCH:
        return "model and state encoding mismatch";
    case CORE_ESTOPPED:
        return "stopped";
    case CORE_ERANGE:
        return "value out of range";
    case CORE_EBUSY:
        return "already in progress";
    default:
        break;
    }
    if (rc > 0) return strerror(rc);
    return "unknown error";
}
