# SPDX-License-Identifier: Apache-2.0
# Runs one preload program and checks its exit code, its exact stdout and its
# stderr. CTest alone cannot do this: PASS_REGULAR_EXPRESSION makes it ignore
# the exit code, so a program that crashed after printing would pass.
#
#   cmake -DEXPECT_RC=N [-DEXPECT_STDOUT=file] [-DEXPECT_STDERR_REGEX=re]
#         -P run_expect.cmake -- COMMAND ARGS...
# Without EXPECT_STDERR_REGEX, stderr must be empty. The command is typically
# `cmake -E env LD_PRELOAD=... prog`, so this script itself is not preloaded.

set(command "")
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 1 ${last})
  if(seen_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
    set(seen_separator TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "run_expect.cmake: no command after --")
endif()
if(NOT DEFINED EXPECT_RC)
  message(FATAL_ERROR "run_expect.cmake: EXPECT_RC is required")
endif()

execute_process(COMMAND ${command}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  TIMEOUT 300)

set(failures "")
if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
  string(APPEND failures "exit code: expected ${EXPECT_RC}, got '${rc}'\n")
endif()
if(DEFINED EXPECT_STDOUT)
  file(READ "${EXPECT_STDOUT}" expected_out)
  if(NOT out STREQUAL expected_out)
    string(APPEND failures "stdout differs from ${EXPECT_STDOUT}\n--- expected ---\n${expected_out}--- got ---\n${out}--- end ---\n")
  endif()
endif()
if(DEFINED EXPECT_STDERR_REGEX)
  if(NOT err MATCHES "${EXPECT_STDERR_REGEX}")
    string(APPEND failures "stderr does not match '${EXPECT_STDERR_REGEX}'\n")
  endif()
elseif(NOT err STREQUAL "")
  string(APPEND failures "stderr is not empty\n")
endif()

if(failures)
  string(REPLACE ";" " " shown "${command}")
  message(FATAL_ERROR "command: ${shown}\n${failures}--- stderr ---\n${err}--- end ---")
endif()
message(STATUS "ok (exit ${rc}): ${out}")
