trail_add_test(test_sch_event SOURCES test_sch_event.c LIBS trail_schemas LABELS unit)
trail_add_test(test_mdl_file SOURCES test_mdl_file.c LIBS trail_model LABELS unit)
