# Every target links trail_warnings: a strict warning list, errors by default.
add_library(trail_warnings INTERFACE)
target_compile_options(trail_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
  -Wcast-qual -Wno-overlength-strings -Werror=implicit-function-declaration
  $<$<BOOL:${TRAIL_WERROR}>:-Werror>)
target_compile_definitions(trail_warnings INTERFACE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
