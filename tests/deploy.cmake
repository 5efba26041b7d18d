# Deployment files, checked with the tools that run them (shell scripts; exit 77 = skipped, with the
# reason printed). test_deploy: `cmake --install` into a scratch DESTDIR, `systemd-analyze verify`
# and `security` (exposure below 2.0) on the installed units, and the serve unit's command line
# started by hand. test_deploy_pidns: serve and an encoder worker on one store in separate PID
# namespaces (503: LMDB's reader check goes by PID) and in one (200), as the compose file arranges.
add_test(NAME test_deploy
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_deploy.sh ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR})
add_test(NAME test_deploy_pidns
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_deploy_pidns.sh $<TARGET_FILE:trail>)
set_tests_properties(test_deploy test_deploy_pidns PROPERTIES
  LABELS "deploy" TIMEOUT 120 SKIP_RETURN_CODE 77 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
