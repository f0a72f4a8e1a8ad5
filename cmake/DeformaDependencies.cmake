# Finds deforma's dependencies, all from Debian 12 packages (deps/debian-packages.txt).
find_package(Threads REQUIRED)
find_package(GDAL CONFIG REQUIRED)
find_package(Eigen3 REQUIRED NO_MODULE)
find_package(TBB REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(PkgConfig REQUIRED)
# Boost: the service's HTTP (Beast/Asio, header-only). OpenSSL: SHA-256, of the service's API keys and in the
# pipeline (sha256_hex).
find_package(Boost 1.74 REQUIRED)
find_package(OpenSSL REQUIRED)

# FFTW3 single precision (Debian ships pkg-config files, no CMake package).
pkg_check_modules(FFTW3F REQUIRED IMPORTED_TARGET fftw3f)
add_library(deforma_fftw3f INTERFACE)
target_link_libraries(deforma_fftw3f INTERFACE PkgConfig::FFTW3F)

# OpenCV: only the modules deforma uses are installed (core, imgproc, video), so the umbrella
# OpenCVConfig.cmake of libopencv-dev is not there; locate the pieces directly.
find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
add_library(deforma_opencv INTERFACE)
target_include_directories(deforma_opencv SYSTEM INTERFACE "${OPENCV_INCLUDE_DIR}")
foreach(part core imgproc video)
  find_library(OPENCV_${part}_LIBRARY opencv_${part} REQUIRED)
  target_link_libraries(deforma_opencv INTERFACE "${OPENCV_${part}_LIBRARY}")
endforeach()
install(TARGETS deforma_fftw3f deforma_opencv EXPORT deformaTargets)
