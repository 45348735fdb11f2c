# install.exports (cmake -P): the shared libraries export exactly the public API.
#
#   - `nm -D --defined-only` on each library lists only kiln_ names: no kiln__ (internal) name and
#     nothing else (a few linker-defined symbols excepted);
#   - every function that a public header declares is marked KILN_API and exported by exactly one
#     of the libraries (a missing KILN_API fails here);
#   - every kiln_ name a library exports is declared KILN_API in a public header.
#
# -D arguments: NM, API_CMAKE (tests/headers/kiln_api.cmake), HEADERS (the installed public
# headers, separated by '|'), LIBS (libkiln-sched.so, and libkiln.so when the engine is built,
# separated by '|').
cmake_minimum_required(VERSION 3.20)
include("${API_CMAKE}")

# The names a library exports (defined dynamic symbols).
function(exported lib out)
  execute_process(COMMAND "${NM}" -D --defined-only "${lib}"
                  OUTPUT_VARIABLE text ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} -D --defined-only ${lib} failed (${rc}): ${err}")
  endif()
  string(REPLACE "\n" ";" lines "${text}")
  set(names "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[0-9A-Fa-f]* *[A-Za-z] ([^ @]+)")
      list(APPEND names "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

# Symbols the linker itself may define in a shared library's dynamic table.
set(linker_symbols _init _fini _edata _end __bss_start)

string(REPLACE "|" ";" headers "${HEADERS}")
string(REPLACE "|" ";" libs "${LIBS}")
set(declared "")
set(failures "")
foreach(h IN LISTS headers)
  kiln_header_functions("${h}" api plain)
  list(APPEND declared ${api})
  foreach(fn IN LISTS plain)
    string(APPEND failures "FAIL: ${h} declares ${fn} without KILN_API\n")
  endforeach()
endforeach()
list(LENGTH declared ndeclared)
if(ndeclared EQUAL 0)
  string(APPEND failures "FAIL: no KILN_API function found in ${HEADERS}\n")
endif()

set(all_exported "")
foreach(lib IN LISTS libs)
  get_filename_component(label "${lib}" NAME)
  exported("${lib}" names)
  list(LENGTH names nexported)
  message(STATUS "${label}: ${nexported} symbols exported")
  foreach(n IN LISTS names)
    if(n MATCHES "^kiln__")
      string(APPEND failures "FAIL: ${label} exports the internal symbol ${n}\n")
    elseif(n MATCHES "^kiln_")
      if(NOT n IN_LIST declared)
        string(APPEND failures "FAIL: ${label} exports ${n}, which no public header declares KILN_API\n")
      endif()
      if(n IN_LIST all_exported)
        string(APPEND failures "FAIL: ${n} is exported by more than one library (also ${label})\n")
      endif()
      list(APPEND all_exported "${n}")
    elseif(NOT n IN_LIST linker_symbols)
      string(APPEND failures "FAIL: ${label} exports ${n}, which is not a kiln_ name\n")
    endif()
  endforeach()
endforeach()
message(STATUS "${ndeclared} functions declared KILN_API in ${HEADERS}")
foreach(d IN LISTS declared)
  if(NOT d IN_LIST all_exported)
    string(APPEND failures "FAIL: ${d} is declared KILN_API but no library exports it\n")
  endif()
endforeach()

if(NOT failures STREQUAL "")
  message(FATAL_ERROR "\n${failures}")
endif()
message(STATUS "ok: the libraries export every KILN_API function of the headers, and nothing else")
