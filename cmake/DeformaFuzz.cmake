# libFuzzer build (DEFORMA_BUILD_FUZZ=ON), as GDAL's fuzzers run under OSS-Fuzz: the library is compiled
# with coverage instrumentation (-fsanitize=fuzzer-no-link) and AddressSanitizer + UndefinedBehaviorSanitizer,
# and each target in tests/fuzz links libFuzzer's driver. Use a build folder of its own (./run fuzz uses
# build-fuzz/): every object differs from the normal build's.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang" OR NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "DEFORMA_BUILD_FUZZ needs clang as the C and C++ compiler (libFuzzer ships with it); "
                      "found ${CMAKE_C_COMPILER_ID} and ${CMAKE_CXX_COMPILER_ID}. Configure a fresh build folder "
                      "with -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++.")
endif()
# Undefined behaviour aborts, so that libFuzzer records the input instead of printing a line and going on.
# DEFORMA_FUZZ_OPTIMIZATION (given last, it overrides the build type's level): -O1 with line tables is how
# OSS-Fuzz builds, for long runs (./run fuzz); -O0 compiles in half the time, for the short runs of CI
# (./run test), where the build dominates.
set(DEFORMA_FUZZ_OPTIMIZATION "-O1" CACHE STRING "Optimization level of the fuzz build (-O0 or -O1)")
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer ${DEFORMA_FUZZ_OPTIMIZATION} -gline-tables-only)
add_link_options(-fsanitize=address,undefined)
