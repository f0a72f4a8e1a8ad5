# Fails the build when a module's compiled code uses a symbol that only a module above it defines: the
# link-level half of the layering (CheckModuleLayers.cmake checks the includes). A declaration in a lower
# module's header whose definition lives in a higher module passes the include scan but not this. Run
# after the library is built, on its object files:
#   cmake -DOBJECT_DIR=<dir with one folder of objects per module> -DMODULES=core,io,... -DNM=<nm>
#         -P CheckModuleLinks.cmake
if(NOT OBJECT_DIR OR NOT MODULES OR NOT NM)
  message(FATAL_ERROR "CheckModuleLinks.cmake needs OBJECT_DIR, MODULES and NM")
endif()
string(REPLACE "," ";" MODULES "${MODULES}")

# Symbols lists are long; mangled names have no spaces, so "name type" pairs are matched whole.
function(symbols_of objects kinds out_var)
  execute_process(COMMAND "${NM}" -g --format=posix ${ARGN} ${objects} OUTPUT_VARIABLE listing
                  RESULT_VARIABLE rc ERROR_VARIABLE errors)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on the objects of ${OBJECT_DIR}: ${errors}")
  endif()
  string(REGEX MATCHALL "(^|\n)[^ \n]+ [${kinds}]" pairs "${listing}")
  list(TRANSFORM pairs REPLACE "^\n?([^ ]+) .$" "\\1")
  set(${out_var} "${pairs}" PARENT_SCOPE)
endfunction()

# Who defines what: strong definitions only (code, data); inline functions and templates are weak in
# every object that uses them and belong to nobody.
set(index 0)
foreach(module IN LISTS MODULES)
  file(GLOB_RECURSE objects_${module} "${OBJECT_DIR}/${module}/*.o")
  if(objects_${module})
    symbols_of("${objects_${module}}" "TDBR" defined --defined-only)
    foreach(symbol IN LISTS defined)
      set("owner_${symbol}" ${index})
    endforeach()
  endif()
  math(EXPR index "${index} + 1")
endforeach()

set(violations "")
set(index 0)
foreach(module IN LISTS MODULES)
  foreach(object IN LISTS objects_${module})
    symbols_of("${object}" "U" undefined --undefined-only)
    foreach(symbol IN LISTS undefined)
      if(DEFINED "owner_${symbol}" AND owner_${symbol} GREATER index)
        list(GET MODULES ${owner_${symbol}} owner)
        file(RELATIVE_PATH shown "${OBJECT_DIR}" "${object}")
        string(APPEND violations "  ${shown}: module '${module}' uses ${symbol}, defined in '${owner}' above it\n")
      endif()
    endforeach()
  endforeach()
  math(EXPR index "${index} + 1")
endforeach()
if(violations)
  message(FATAL_ERROR "module layering violated at link level (order: ${MODULES}; names demangle with "
                      "c++filt):\n${violations}")
endif()
