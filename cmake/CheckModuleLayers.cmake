# Fails the build when a module includes a module it does not depend on, or when core includes GDAL.
# Run as a build step, before anything compiles:
#   cmake -DSOURCE_DIR=<project> -DGRAPH=<build>/deforma_module_graph.cmake -P CheckModuleLayers.cmake
# GRAPH is the module graph declared in src/*/module.cmake (cmake/DeformaModules.cmake writes it): a module
# may use the modules in DEFORMA_MODULE_USES_<module>. Without GRAPH, -DMODULES=a,b,c gives a plain order,
# each module using those before it.
cmake_minimum_required(VERSION 3.25)  # IN_LIST and the other policies of the project
if(NOT SOURCE_DIR OR (NOT GRAPH AND NOT MODULES))
  message(FATAL_ERROR "CheckModuleLayers.cmake needs SOURCE_DIR and GRAPH (or MODULES)")
endif()
if(GRAPH)
  include("${GRAPH}")
  set(MODULES ${DEFORMA_MODULES})
else()
  string(REPLACE "," ";" MODULES "${MODULES}")
  set(below "")
  foreach(module IN LISTS MODULES)
    set(DEFORMA_MODULE_USES_${module} ${below})
    list(APPEND below ${module})
  endforeach()
endif()

set(violations "")
foreach(module IN LISTS MODULES)
  file(GLOB_RECURSE files
       "${SOURCE_DIR}/src/${module}/*.cpp" "${SOURCE_DIR}/src/${module}/*.hpp"
       "${SOURCE_DIR}/include/deforma/${module}/*.hpp" "${SOURCE_DIR}/include/deforma/${module}.hpp")
  foreach(file IN LISTS files)
    file(RELATIVE_PATH shown "${SOURCE_DIR}" "${file}")
    file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]+[\"<]")
    foreach(line IN LISTS includes)
      string(STRIP "${line}" line)
      # core is the part of the library that needs no GDAL (logging, grids, errors, declarations): GDAL's
      # set-up and its error handling live in io.
      if(module STREQUAL "core" AND line MATCHES "<(gdal|cpl_|ogr)[a-z_]*\\.h>")
        string(APPEND violations "  ${shown}: module 'core' must not use GDAL (its set-up lives in io): ${line}\n")
        continue()
      endif()
      # "deforma/<module>/x.hpp", "deforma/<module>.hpp" (public) or "<module>/x.hpp" (internal).
      set(used "")
      if(line MATCHES "\"deforma/([a-z_]+)[/.]")
        set(used "${CMAKE_MATCH_1}")
      elseif(line MATCHES "\"([a-z_]+)/")
        set(used "${CMAKE_MATCH_1}")
      endif()
      if(used AND NOT used STREQUAL module AND used IN_LIST MODULES AND
         NOT used IN_LIST DEFORMA_MODULE_USES_${module})
        list(FIND MODULES "${used}" used_index)
        list(FIND MODULES "${module}" module_index)
        if(used_index GREATER module_index)
          set(why "which is above it")
        else()
          string(REPLACE ";" " " allowed "${DEFORMA_MODULE_USES_${module}}")
          set(why "which it does not depend on (src/${module}/module.cmake; it may use: ${allowed})")
        endif()
        string(APPEND violations "  ${shown}: module '${module}' uses '${used}', ${why}: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  string(REPLACE ";" " " shown_modules "${MODULES}")
  message(FATAL_ERROR "module layering violated (modules, lowest first: ${shown_modules}):\n${violations}")
endif()
