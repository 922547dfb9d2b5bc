# SPDX-License-Identifier: Apache-2.0
# Makes DEST, a copy of SOURCE that the kernel runs AT_SECURE: setgid to a
# group other than the caller's real group, so exec changes the effective gid.
#
#   cmake -DSOURCE=prog -DDEST=copy -P make_setgid_copy.cmake
#
# Root may give the file any group. Any other user needs a supplementary
# group (chmod g+s is only kept for a group the owner is in). Where neither
# holds, this fails with the reason: the AT_SECURE test must not pass, or be
# skipped, without having run a secure process.

foreach(var SOURCE DEST)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "make_setgid_copy.cmake: ${var} is required")
  endif()
endforeach()

function(id_of flag out)
  execute_process(COMMAND id ${flag} OUTPUT_VARIABLE value RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "make_setgid_copy.cmake: `id ${flag}` failed (${rc})")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

id_of(-u uid)
id_of(-g gid)
id_of(-G groups)
string(REPLACE " " ";" groups "${groups}")

# Root may use any group (in a user namespace only mapped ones, hence
# several); another user only its supplementary groups.
if(uid EQUAL 0)
  set(candidates 65534 1 2 3 4 5)
else()
  set(candidates ${groups})
endif()
list(REMOVE_ITEM candidates ${gid})

file(REMOVE "${DEST}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy "${SOURCE}" "${DEST}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "make_setgid_copy.cmake: cannot copy ${SOURCE} to ${DEST}")
endif()
set(group "")
set(errors "")
foreach(g IN LISTS candidates)
  execute_process(COMMAND chgrp ${g} "${DEST}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc EQUAL 0)
    set(group ${g})
    break()
  endif()
  string(APPEND errors "${err}")
endforeach()
if(group STREQUAL "")
  if(NOT candidates)
    set(candidates "none, it is in no other group")
  endif()
  string(STRIP "${errors}" errors)
  message(FATAL_ERROR
    "make_setgid_copy.cmake: cannot make a setgid copy as uid ${uid}: no group other than its real "
    "group ${gid} could be given to the file (tried: ${candidates}) ${errors}\nThe AT_SECURE test "
    "needs root or a user in a supplementary group (e.g. `usermod -aG <group> <user>`, then log in "
    "again); it does not skip.")
endif()
# After chgrp: changing the group clears the setgid bit.
execute_process(COMMAND chmod 2755 "${DEST}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "make_setgid_copy.cmake: `chmod 2755 ${DEST}` failed: ${err}")
endif()
execute_process(COMMAND stat -c "%a %g" "${DEST}" OUTPUT_VARIABLE mode OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT mode STREQUAL "2755 ${group}")
  message(FATAL_ERROR "make_setgid_copy.cmake: ${DEST} is '${mode}' (mode, gid), not '2755 ${group}': "
                      "the setgid bit did not stick")
endif()
message(STATUS "setgid copy (group ${group}): ${DEST}")
