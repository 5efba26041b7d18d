# `cmake --install BUILD [--prefix P]` (DESTDIR honored): the trail binary, its systemd units, the
# sysusers.d entry for the user they run as, and the example configurations.
#
# The units in deploy/systemd name /usr/local/bin/trail, so that a copy by hand works with the
# default prefix; the installed copies name the binary under the prefix the install uses (resolved
# at install time, so `--prefix` is honored too). Unit and sysusers directories are relative to the
# prefix by default: P/lib/systemd/system and P/lib/sysusers.d are on systemd's search path for
# P = /usr and P = /usr/local.
include(GNUInstallDirs)

set(TRAIL_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "where the systemd units go (relative: under the install prefix)")
set(TRAIL_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "where the sysusers.d entry goes (relative: under the install prefix)")

# The binary as built: its RUNPATH is OpenBLAS's directory (openblas-pthread), a system path, right
# for the installed copy too. install(TARGETS) would rewrite it and fails here (the link line's
# runpath ends in an empty entry the linker drops, so CMake's check of the old value fails).
install(PROGRAMS $<TARGET_FILE:trail> DESTINATION ${CMAKE_INSTALL_BINDIR})

set(_trail_units
    ${PROJECT_SOURCE_DIR}/deploy/systemd/trail-serve.service
    ${PROJECT_SOURCE_DIR}/deploy/systemd/trail-encoder@.service)
# The rewrite runs in the install script: CMAKE_INSTALL_PREFIX and DESTDIR are the install's.
install(CODE "
  set(_bindir \"${CMAKE_INSTALL_BINDIR}\")
  if(NOT IS_ABSOLUTE \"\${_bindir}\")
    set(_bindir \"\${CMAKE_INSTALL_PREFIX}/\${_bindir}\")
  endif()
  set(_unitdir \"${TRAIL_SYSTEMD_UNITDIR}\")
  if(NOT IS_ABSOLUTE \"\${_unitdir}\")
    set(_unitdir \"\${CMAKE_INSTALL_PREFIX}/\${_unitdir}\")
  endif()
  foreach(_unit ${_trail_units})
    get_filename_component(_name \"\${_unit}\" NAME)
    file(READ \"\${_unit}\" _text)
    string(REPLACE \"/usr/local/bin/trail \" \"\${_bindir}/trail \" _text \"\${_text}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/systemd/\${_name}\" \"\${_text}\")
    file(INSTALL \"${PROJECT_BINARY_DIR}/systemd/\${_name}\" DESTINATION \"\${_unitdir}\"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endforeach()
")

install(FILES ${PROJECT_SOURCE_DIR}/deploy/sysusers.d/trail.conf DESTINATION ${TRAIL_SYSUSERSDIR})
install(FILES ${PROJECT_SOURCE_DIR}/deploy/encoder.conf.example
              ${PROJECT_SOURCE_DIR}/deploy/encoder-dev.conf.example
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
