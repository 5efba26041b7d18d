/* core_err.c: descriptions of CORE_E* codes, delegating LMDB and errno codes to their owners. */
#include "core_err.h"

#include <lmdb.h>
#include <string.h>

const char *core_strerror(int rc) {
    switch (rc) {
    case CORE_OK: return "success";
    case CORE_ENOMEM: return "out of memory";
    case CORE_EINVAL: return "invalid argument";
    case CORE_EIO: return "input/output error";
    case CORE_EFORMAT: return "malformed input";
    case CORE_ECHECKSUM: return "checksum mismatch (truncated or corrupt)";
    case CORE_EVERSION: return "unsupported version";
    case CORE_ENOTFOUND: return "not found";
    case CORE_ESTORE: return "state store error";
    case CORE_EFULL: return "state store is full";
    case CORE_EKAFKA: return "kafka error";
    case CORE_ETOOBIG: return "too large";
    case CORE_EMISMATCH: return "model and state encoding mismatch";
    case CORE_ESTOPPED: return "stopped";
    case CORE_ERANGE: return "value out of range";
    case CORE_EBUSY: return "already in progress";
    default: break;
    }
    if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) return mdb_strerror(rc);
    if (rc > 0) return strerror(rc);
    return "unknown error";
}
