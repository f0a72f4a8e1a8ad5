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
# -O1 with line tables, as OSS-Fuzz builds: quicker to compile than -O2, stacks stay readable; given last,
# it overrides the build type's level.
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -O1 -gline-tables-only)
add_link_options(-fsanitize=address,undefined)
