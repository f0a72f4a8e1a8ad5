#pragma once
// Per-thread cache of open GDAL datasets (internal to the maps module): a tile costs no file open, and no
// dataset handle is ever shared between threads (GDAL datasets are not thread-safe).
#include <string>
#include <vector>

namespace deforma::maps::detail {

/// The dataset of `path` opened read-only on this thread (cached; at most 16 files per thread). With
/// `bands` (1-based, not all of them), a virtual dataset of just those bands, cached alongside.
/// Throws IoError / FormatError naming the file. The handle stays valid until the next call on this
/// thread that opens another file.
void* dataset(const std::string& path, const std::vector<int>& bands = {});

/// Writes `bytes` RGBA (or RGB when `channels` is 3) pixels as PNG or WebP and returns the file's bytes.
std::string encode_pixels(const unsigned char* pixels, int width, int height, int channels,
                          const std::string& format);

}  // namespace deforma::maps::detail
