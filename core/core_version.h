/* core_version.h: trail's version, kept in this one place: `trail serve` exports it in
 * trail_build_info, and a `trail --version` would print it. Raise it with each release. */
#ifndef TRAIL_CORE_VERSION_H
#define TRAIL_CORE_VERSION_H

#define TRAIL_VERSION "0.1.0"

#endif
