# Runs a program that fails on purpose under mpirun and checks that the run
# stops by itself, quickly, with a non-zero status, that the output contains
# EXPECT, and that MIN_LINES..MAX_LINES (default 1..1) "ringscan: error:"
# lines were printed (several when every rank detects the error itself).
# Variables: MPIEXEC (the build's launcher script, mpiexec-tests) NP PROBE ARGS (space-separated) EXPECT [EXPECT_CODE]
# [MIN_LINES] [MAX_LINES] [LIMIT_S].
if(NOT DEFINED LIMIT_S)
  set(LIMIT_S 60)
endif()
if(NOT DEFINED MIN_LINES)
  set(MIN_LINES 1)
endif()
if(NOT DEFINED MAX_LINES)
  set(MAX_LINES 1)
endif()
separate_arguments(args UNIX_COMMAND "${ARGS}")
string(TIMESTAMP t0 "%s")
execute_process(
  COMMAND ${MPIEXEC} -np ${NP} ${PROBE} ${args}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${LIMIT_S})
string(TIMESTAMP t1 "%s")
math(EXPR elapsed "${t1} - ${t0}")
set(all "${out}${err}")
message(STATUS "${ARGS}, ${NP} ranks: exit '${rc}' after ${elapsed} s")

if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "mpirun did not exit by itself within ${LIMIT_S} s (${rc}): the error path hangs\n${all}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "mpirun exited 0 although rank(s) failed\n${all}")
endif()
if(DEFINED EXPECT_CODE AND NOT rc EQUAL EXPECT_CODE)
  message(FATAL_ERROR "mpirun exited ${rc}, expected ${EXPECT_CODE}\n${all}")
endif()
string(FIND "${all}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the output lacks the expected message '${EXPECT}'\n${all}")
endif()
string(REGEX MATCHALL "ringscan: error:" lines "${all}")
list(LENGTH lines n)
if(n LESS MIN_LINES OR n GREATER MAX_LINES)
  message(FATAL_ERROR "expected ${MIN_LINES} to ${MAX_LINES} 'ringscan: error:' line(s), found ${n}\n${all}")
endif()
