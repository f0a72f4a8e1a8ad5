# Fails the build when a module's compiled code uses a symbol that only a module it does not depend on
# defines: the link-level half of the layering (CheckModuleLayers.cmake checks the includes). A declaration
# in a lower module's header whose definition lives in a higher module passes the include scan but not
# this. Run after the modules are built, on the object files of each module's target (deforma_<module>,
# whose objects lie in its own folder, CMakeFiles/deforma_<module>.dir/):
#   cmake -DOBJECTS=<module objects> -DGRAPH=<module graph> -DNM=<nm> -P CheckModuleLinks.cmake
# GRAPH is the graph of src/*/module.cmake and OBJECTS the list of each module's objects
# (DEFORMA_MODULE_OBJECTS_<module>), both as cmake/DeformaModules.cmake writes them.
cmake_minimum_required(VERSION 3.25)  # IN_LIST and the other policies of the project
if(NOT OBJECTS OR NOT GRAPH OR NOT NM)
  message(FATAL_ERROR "CheckModuleLinks.cmake needs OBJECTS, GRAPH and NM")
endif()
include("${GRAPH}")
include("${OBJECTS}")

# Symbols lists are long; mangled names have no spaces, so "name type" pairs are matched whole.
function(symbols_of objects kinds out_var)
  execute_process(COMMAND "${NM}" -g --format=posix ${ARGN} ${objects} OUTPUT_VARIABLE listing
                  RESULT_VARIABLE rc ERROR_VARIABLE errors)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on the objects of ${objects}: ${errors}")
  endif()
  string(REGEX MATCHALL "(^|\n)[^ \n]+ [${kinds}]" pairs "${listing}")
  list(TRANSFORM pairs REPLACE "^\n?([^ ]+) .$" "\\1")
  set(${out_var} "${pairs}" PARENT_SCOPE)
endfunction()

# Who defines what: strong definitions only (code, data); inline functions and templates are weak in
# every object that uses them and belong to nobody.
foreach(module IN LISTS DEFORMA_MODULES)
  set(objects_${module} ${DEFORMA_MODULE_OBJECTS_${module}})
  if(NOT objects_${module})
    message(FATAL_ERROR "module '${module}' has no objects in ${OBJECTS}")
  endif()
  symbols_of("${objects_${module}}" "TDBR" defined --defined-only)
  foreach(symbol IN LISTS defined)
    set("owner_${symbol}" ${module})
  endforeach()
endforeach()

set(violations "")
foreach(module IN LISTS DEFORMA_MODULES)
  foreach(object IN LISTS objects_${module})
    symbols_of("${object}" "U" undefined --undefined-only)
    foreach(symbol IN LISTS undefined)
      if(DEFINED "owner_${symbol}")
        set(owner "${owner_${symbol}}")
        if(NOT owner STREQUAL module AND NOT owner IN_LIST DEFORMA_MODULE_USES_${module})
          string(REGEX REPLACE "^.*/CMakeFiles/" "" shown "${object}")
          string(APPEND violations "  ${shown}: module '${module}' uses ${symbol}, defined in '${owner}', which "
                                   "it does not depend on\n")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "module layering violated at link level (src/*/module.cmake; names demangle with "
                      "c++filt):\n${violations}")
endif()
