#include "maps/gdal_cache.hpp"

#include <atomic>
#include <list>
#include <map>
#include <thread>

#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <gdal_utils.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_error_trap.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::maps::detail {
namespace {

constexpr std::size_t kFilesPerThread = 16;

struct Entry {
  std::string path;
  GDALDatasetH base = nullptr;
  std::map<std::vector<int>, GDALDatasetH> subsets;  // band-subset VRTs reading from `base`
};

class Cache {
 public:
  ~Cache() {
    for (auto& e : entries_) close(e);
  }
  void* get(const std::string& path, const std::vector<int>& bands) {
    auto it = entries_.begin();
    while (it != entries_.end() && it->path != path) ++it;
    if (it == entries_.end()) {
      entries_.push_front(Entry{path, open(path), {}});
      if (entries_.size() > kFilesPerThread) {
        close(entries_.back());
        entries_.pop_back();
      }
      it = entries_.begin();
    } else if (it != entries_.begin()) {
      entries_.splice(entries_.begin(), entries_, it);  // most recently used first
      it = entries_.begin();
    }
    if (bands.empty() || static_cast<int>(bands.size()) == GDALGetRasterCount(it->base)) {
      bool identity = true;
      for (std::size_t i = 0; i < bands.size(); ++i)
        identity = identity && bands[i] == static_cast<int>(i) + 1;
      if (identity) return it->base;
    }
    auto& subset = it->subsets[bands];
    if (!subset) {
      std::vector<std::string> args{"-of", "VRT"};
      for (int b : bands) {
        args.push_back("-b");
        args.push_back(std::to_string(b));
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      io::GdalErrorTrap trap;
      GDALTranslateOptions* options = GDALTranslateOptionsNew(argv.data(), nullptr);
      subset = GDALTranslate("", it->base, options, nullptr);
      GDALTranslateOptionsFree(options);
      if (!subset) throw IoError(fmt::format("{}: cannot select bands: {}", path, trap.describe()));
    }
    return subset;
  }

 private:
  static GDALDatasetH open(const std::string& path) {
    io::ensure_gdal_initialized();
    io::GdalErrorTrap trap;
    GDALDatasetH ds = GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
    if (!ds) {
      VSIStatBufL st;
      if (VSIStatL(path.c_str(), &st) != 0) throw IoError(fmt::format("{}: no such file", path));
      throw FormatError(fmt::format("{}: not a raster GDAL can read: {}", path, trap.describe()));
    }
    return ds;
  }
  static void close(Entry& e) {
    for (auto& [bands, ds] : e.subsets) GDALClose(ds);
    GDALClose(e.base);
  }
  std::list<Entry> entries_;
};

thread_local Cache cache;
std::atomic<unsigned long> counter{0};

}  // namespace

void* dataset(const std::string& path, const std::vector<int>& bands) {
  return cache.get(path, bands);
}

std::string encode_pixels(const unsigned char* pixels, int width, int height, int channels,
                          const std::string& format) {
  io::ensure_gdal_initialized();
  io::GdalErrorTrap trap;
  GDALDriverH mem = GDALGetDriverByName("MEM");
  GDALDriverH driver = GDALGetDriverByName(format == "webp" ? "WEBP" : "PNG");
  if (!mem || !driver) throw IoError(fmt::format("image format '{}' is not available in this GDAL", format));
  GDALDatasetH ds = GDALCreate(mem, "", width, height, channels, GDT_Byte, nullptr);
  if (!ds) throw IoError("cannot create an in-memory image: " + trap.describe());
  const CPLErr err = GDALDatasetRasterIO(
      ds, GF_Write, 0, 0, width, height, const_cast<unsigned char*>(pixels), width, height, GDT_Byte,
      channels, nullptr, channels, static_cast<GSpacing>(width) * channels, 1);
  if (err != CE_None) {
    GDALClose(ds);
    throw IoError("cannot fill an in-memory image: " + trap.describe());
  }
  if (channels == 4) GDALSetRasterColorInterpretation(GDALGetRasterBand(ds, 4), GCI_AlphaBand);
  const std::string name = fmt::format("/vsimem/deforma_maps_{}.{}", counter++, format);
  // Fast compression: a tile is made for one request, and zlib level 6 costs twice level 1's time for a
  // few percent of size. WebP is lossless: colours encode values, a lossy codec would shift them.
  const char* png_options[] = {"ZLEVEL=1", nullptr};
  const char* webp_options[] = {"LOSSLESS=TRUE", nullptr};
  GDALDatasetH out =
      GDALCreateCopy(driver, name.c_str(), ds, FALSE,
                     const_cast<char**>(format == "webp" ? webp_options : png_options), nullptr, nullptr);
  GDALClose(ds);
  if (!out) {
    VSIUnlink(name.c_str());
    throw IoError(fmt::format("cannot encode a {} image: {}", format, trap.describe()));
  }
  GDALClose(out);
  vsi_l_offset length = 0;
  GByte* bytes = VSIGetMemFileBuffer(name.c_str(), &length, TRUE);
  std::string result(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(length));
  CPLFree(bytes);
  VSIUnlink((name + ".aux.xml").c_str());
  return result;
}

}  // namespace deforma::maps::detail
