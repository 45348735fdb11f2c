# kiln_header_functions(HEADER API_VAR PLAIN_VAR): the functions HEADER declares, in order: those
# marked KILN_API in API_VAR, the others (which should not exist) in PLAIN_VAR. Used at configure
# time by tests/CMakeLists.txt (the C++ linkage check of each header) and by
# tests/install/exports.cmake (the libraries export exactly these).
#
# A simple reading, enough for kiln's headers: comments and preprocessor lines are dropped (they
# mention KILN_API in prose and define it), the rest is cut into statements at ';', '{' and '}',
# and a statement `[KILN_API] TYPE kiln_NAME(...` declares the function kiln_NAME (typedefs,
# struct members and enumerators do not have that shape). A statement that starts with KILN_API
# but has no readable name (a function returning a function pointer, say) is a fatal error, so
# that nothing is skipped silently.
function(kiln_header_functions header api_out plain_out)
  file(READ "${header}" text)
  string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " text "${text}")
  string(REGEX REPLACE "//[^\n]*" "" text "${text}")
  string(REGEX REPLACE "\\\\\n" " " text "${text}")
  string(REGEX REPLACE "(^|\n)[ \t]*#[^\n]*" "\\1" text "${text}")
  # Statements become list items; brackets would stop CMake from splitting the list at ';'.
  string(REGEX REPLACE "[][]" " " text "${text}")
  string(REGEX REPLACE "[{}]" ";" text "${text}")
  set(api "")
  set(plain "")
  foreach(st IN LISTS text)
    string(STRIP "${st}" st)
    if(st MATCHES "^(typedef|return|static)[^A-Za-z0-9_]")
      continue()
    endif()
    if(st MATCHES "^(KILN_API[ \t\n]+)?[A-Za-z_][A-Za-z0-9_ \t\n*]*[^A-Za-z0-9_](kiln_[A-Za-z0-9_]+)[ \t\n]*\\(")
      if(CMAKE_MATCH_1)
        list(APPEND api ${CMAKE_MATCH_2})
      else()
        list(APPEND plain ${CMAKE_MATCH_2})
      endif()
    elseif(st MATCHES "^KILN_API[^A-Za-z0-9_]")
      message(FATAL_ERROR "${header}: cannot read the function name of `${st}`")
    endif()
  endforeach()
  set(${api_out} "${api}" PARENT_SCOPE)
  set(${plain_out} "${plain}" PARENT_SCOPE)
endfunction()
