#include "deforma/timeseries/image_set.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/io/raster.hpp"
#include "timeseries/csv.hpp"

namespace deforma::timeseries {
namespace fs = std::filesystem;

std::string Image::track() const {
  if (orbit.empty()) return tile;
  if (tile.empty()) return orbit;
  return orbit + "/" + tile;
}

std::vector<io::Date> ImageSet::dates() const {
  std::vector<io::Date> d;
  d.reserve(images.size());
  for (const auto& im : images) d.push_back(im.date);
  return d;
}

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::vector<std::string> known = {".tif", ".tiff", ".jp2", ".jpg", ".jpeg", ".png", ".vrt"};
  return std::find(known.begin(), known.end(), ext) != known.end();
}

// A Sentinel-1 SAFE product given as a folder, or a zip of one named as the products are.
bool is_safe_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::exists(p / "manifest.safe", ec);
}

bool is_s1_zip(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".zip" && p.filename().string().rfind("S1", 0) == 0;
}

bool has_wildcard(const std::string& s) {
  return s.find_first_of("*?") != std::string::npos;
}

}  // namespace

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (has_wildcard(input)) {
      const fs::path pattern(input);
      const fs::path folder = pattern.parent_path().empty() ? fs::path(".") : pattern.parent_path();
      std::vector<std::string> matched;
      if (fs::is_directory(folder, ec)) {
        for (const auto& entry : fs::directory_iterator(folder)) {
          if (!entry.is_regular_file() && !is_safe_folder(entry.path())) continue;
          const std::string name = entry.path().filename().string();
          if (fnmatch(pattern.filename().string().c_str(), name.c_str(), 0) == 0) {
            matched.push_back((pattern.parent_path().empty() ? fs::path(name) : folder / name).string());
          }
        }
      }
      if (matched.empty()) throw IoError(fmt::format("input pattern '{}' matches no file", input));
      std::sort(matched.begin(), matched.end());
      files.insert(files.end(), matched.begin(), matched.end());
    } else if (is_safe_folder(input)) {
      files.push_back(input);
    } else if (fs::is_directory(input, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(input)) {
        if ((entry.is_regular_file() && (is_image_file(entry.path()) || is_s1_zip(entry.path()))) ||
            is_safe_folder(entry.path()))
          found.push_back(entry.path().string());
      }
      if (found.empty()) throw IoError(fmt::format("input folder '{}' holds no image file", input));
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(input, ec)) {
      files.push_back(input);
    } else {
      throw IoError(fmt::format("input '{}' does not exist", input));
    }
  }
  return files;
}

std::vector<Image> read_manifest(const std::string& csv_path) {
  const auto table = detail::read_csv(csv_path);
  const int path_col = table.require_column("path");
  const int date_col = table.require_column("date");
  const int orbit_col = table.column("orbit");
  const int tile_col = table.column("tile");
  const int sensor_col = table.column("sensor");
  std::vector<Image> images;
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    const auto& row = table.rows[i];
    Image im;
    im.path = detail::resolve_relative(csv_path, row[path_col]);
    if (row[path_col].empty()) {
      throw FormatError(fmt::format("{} line {}: empty path", csv_path, table.line_numbers[i]));
    }
    try {
      im.date = io::Date::parse(row[date_col]);
    } catch (const InvalidArgument& e) {
      throw FormatError(
          fmt::format("{} line {}, column date: {}", csv_path, table.line_numbers[i], e.what()));
    }
    im.date_source = "manifest";
    if (orbit_col >= 0) im.orbit = row[orbit_col];
    if (tile_col >= 0) im.tile = row[tile_col];
    if (sensor_col >= 0) im.sensor = row[sensor_col];
    images.push_back(std::move(im));
  }
  if (images.empty()) throw FormatError(fmt::format("{}: the manifest lists no image", csv_path));
  return images;
}

namespace {

bool is_manifest(const std::vector<std::string>& inputs) {
  if (inputs.size() != 1) return false;
  std::string ext = fs::path(inputs[0]).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".csv";
}

}  // namespace

ImageSet load_image_set(const std::vector<std::string>& inputs, const ImageSetOptions& options) {
  options.validate();
  if (inputs.empty())
    throw InvalidArgument("images: no input given (expected files, folders, patterns or a CSV manifest)");
  ImageSet set;
  if (is_manifest(inputs)) {
    set.images = read_manifest(inputs[0]);
  } else {
    // Files named one by one must all be dated; files found by listing a folder may include side files.
    std::vector<std::string> explicit_files;
    for (const auto& input : inputs) {
      std::error_code ec;
      if (!has_wildcard(input) && (!fs::is_directory(input, ec) || is_safe_folder(input)))
        explicit_files.push_back(input);
    }
    for (const auto& path : expand_inputs(inputs)) {
      const bool named =
          std::find(explicit_files.begin(), explicit_files.end(), path) != explicit_files.end();
      // SAR products: acquisition time to the second, relative orbit, platform (SAFE folders and zips are
      // read through their annotation and manifest).
      correlate::SarProduct sar;
      try {
        sar = correlate::inspect_product(path);
      } catch (const Error& e) {
        if (is_safe_folder(path) || is_s1_zip(path)) {
          if (!options.skip_bad) throw;
          set.skipped.push_back(fmt::format("{}: unreadable ({})", path, e.what()));
          continue;
        }
      }
      const auto evidence = io::date_evidence(path);
      if (sar.sar && sar.time_s && evidence.empty()) {
        Image im;
        im.path = path;
        im.time_s = sar.time_s;
        im.date = io::Date::from_days_since_epoch(static_cast<long long>(std::floor(*sar.time_s / 86400.0)));
        im.date_source = sar.time_source;
        im.sar = true;
        im.sensor = sar.platform;
        if (!sar.relative_orbit.empty()) im.orbit = fmt::format("R{:03d}", std::stoi(sar.relative_orbit));
        set.images.push_back(std::move(im));
        continue;
      }
      if (evidence.empty() && !named) {
        set.skipped.push_back(
            fmt::format("{}: no acquisition date in its name or metadata (not part of the series)", path));
        continue;
      }
      Image im;
      im.path = path;
      im.date = io::acquisition_date(path);  // throws, naming the file, when missing or ambiguous
      im.date_source = evidence.front().source;
      const auto name_info = io::parse_product_name(path);
      im.sensor = name_info.sensor;
      im.tile = name_info.tile;
      im.orbit = name_info.orbit;
      if (sar.sar) {
        im.sar = true;
        if (sar.time_s) {
          // The name's or metadata's date and the time to the second must name the same day.
          const auto day =
              io::Date::from_days_since_epoch(static_cast<long long>(std::floor(*sar.time_s / 86400.0)));
          if (day != im.date) {
            throw FormatError(fmt::format("{}: acquisition date {} ({}) but time {} ({})", path,
                                          im.date.iso(), im.date_source, day.iso(), sar.time_source));
          }
          im.time_s = sar.time_s;
        }
        if (!sar.platform.empty()) im.sensor = sar.platform;
        if (!sar.relative_orbit.empty()) im.orbit = fmt::format("R{:03d}", std::stoi(sar.relative_orbit));
      }
      set.images.push_back(std::move(im));
    }
  }
  if (options.check_rasters) {
    std::vector<Image> kept;
    std::optional<io::RasterInfo> first;
    for (auto& im : set.images) {
      io::RasterInfo info;
      bool gcps_only = false;
      try {
        if (im.sar) {
          // A SAFE product is described by its measurement raster.
          const auto sar = correlate::inspect_product(im.path);
          info = io::describe(sar.raster_path);
          gcps_only = sar.gcps_only;
        } else {
          info = io::describe(im.path);
        }
      } catch (const Error& e) {
        if (!options.skip_bad) {
          throw IoError(
              fmt::format("image {} cannot be read: {} (use --skip-bad to leave it out)", im.path, e.what()));
        }
        set.skipped.push_back(fmt::format("{}: unreadable ({})", im.path, e.what()));
        continue;
      }
      if (gcps_only) {
        // Warped onto the series' common map grid before matching: no grid of its own to agree on.
      } else if (!first) {
        first = info;
      } else if (info.width != first->width || info.height != first->height) {
        throw InvalidArgument(
            fmt::format("image {} is {}x{} px but {} is {}x{} px: the images of a series must share "
                        "one grid (resample them first)",
                        im.path, info.width, info.height, first->path, first->width, first->height));
      } else if (info.crs_wkt != first->crs_wkt) {
        throw InvalidArgument(
            fmt::format("image {} has CRS '{}' but {} has '{}': the images of a series must share one "
                        "CRS",
                        im.path, info.crs_name.empty() ? "none" : info.crs_name, first->path,
                        first->crs_name.empty() ? "none" : first->crs_name));
      }
      kept.push_back(std::move(im));
    }
    set.images = std::move(kept);
  }
  std::stable_sort(set.images.begin(), set.images.end(), [](const Image& a, const Image& b) {
    if (a.date != b.date) return a.date < b.date;
    if (a.time_s && b.time_s && *a.time_s != *b.time_s) return *a.time_s < *b.time_s;
    if (a.track() != b.track()) return a.track() < b.track();
    return a.path < b.path;
  });
  for (std::size_t i = 1; i < set.images.size(); ++i) {
    const auto& a = set.images[i - 1];
    const auto& b = set.images[i];
    // Same-day images of one track are two acquisitions when their times to the second differ (SAR passes
    // hours apart); without times there is no telling them apart.
    const bool distinct_times = a.time_s && b.time_s && *a.time_s != *b.time_s;
    if (a.date == b.date && a.track() == b.track() && !distinct_times) {
      throw InvalidArgument(
          fmt::format("images {} and {} have the same date {}{}: a series needs one image per date "
                      "(remove one, or give orbit/tile in a manifest)",
                      a.path, b.path, a.date.iso(), a.track().empty() ? "" : " and track " + a.track()));
    }
  }
  if (set.images.empty()) {
    // Say why for each image, or the user is left guessing which rule each file broke.
    constexpr std::size_t kReasonsShown = 8;
    std::string why;
    for (std::size_t i = 0; i < set.skipped.size() && i < kReasonsShown; ++i) why += "; " + set.skipped[i];
    if (set.skipped.size() > kReasonsShown)
      why += fmt::format("; and {} more", set.skipped.size() - kReasonsShown);
    if (set.skipped.empty()) why = fmt::format("; no file matched {}", fmt::join(inputs, " "));
    throw InvalidArgument(fmt::format("images: no usable image among the inputs{}", why));
  }
  return set;
}

}  // namespace deforma::timeseries
