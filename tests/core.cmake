trail_add_test(test_sch_event SOURCES test_sch_event.c LIBS trail_schemas LABELS unit)
# decode(encode(e)) == e for every codec, then `trail record` -> `trail encode --input` through a
# local broker and the reject file's UTF-8 (as processes, hence the kafka label and timeout)
trail_add_test(test_sch_roundtrip SOURCES test_sch_roundtrip.c LIBS trail_schemas LABELS unit kafka TIMEOUT 120)
trail_add_test(test_mdl_file SOURCES test_mdl_file.c LIBS trail_model LABELS unit)
# core_grow: contents kept, doubling, a failed or overflowing growth leaves the array whole
trail_add_test(test_core_alloc SOURCES test_core_alloc.c LIBS trail_core LABELS unit)
# JSON string bodies from any bytes: escapes, UTF-8 kept or escaped, whole cuts, read back by jansson
trail_add_test(test_core_json SOURCES test_core_json.c LIBS trail_core PkgConfig::JANSSON LABELS unit)
# listen addresses: HOST:PORT, [IPv6]:PORT, :PORT, and what is refused
trail_add_test(test_core_addr SOURCES test_core_addr.c LIBS trail_core LABELS unit)
trail_add_test(test_core_log SOURCES test_core_log.c LIBS trail_core LABELS unit)
trail_add_test(test_core_opts SOURCES test_core_opts.c LIBS trail_core LABELS unit)
# the output layer's JSON and text forms, the temporary tree, percentiles
trail_add_test(test_core_report SOURCES test_core_report.c LIBS trail_core PkgConfig::JANSSON LABELS unit)
# the command layer as the binary shows it: every command's --help, groups, --version, one-line
# usage errors naming the flag
trail_add_test(test_cli SOURCES test_cli.c LIBS trail_core LABELS unit)
add_dependencies(test_cli trail)
