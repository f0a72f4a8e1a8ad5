#pragma once
// Image sets: the N images of one place that a time series is built from, each with its acquisition
// date and, when known, its sensor, tile and orbit. An image set comes from a list of files, folders or
// glob patterns, or from a CSV manifest; it is sorted by date and checked (readable, same grid, no
// duplicate dates within a track) before any pair is formed.
#include <optional>
#include <string>
#include <vector>

#include "deforma/io/dates.hpp"

namespace deforma::timeseries {

struct Image {
  std::string path;
  io::Date date;
  std::string date_source;  ///< where the date came from ("file name (Landsat Collection)", "manifest")
  std::string sensor;       ///< "S2A", "LC08"... (empty when unknown)
  std::string tile;         ///< MGRS tile or Landsat path/row (empty when unknown)
  std::string orbit;        ///< relative orbit (empty when unknown)
  /// Acquisition moment to the second (seconds since 1970-01-01 UTC) when the image says so (SAR products:
  /// annotation, metadata, Sentinel-1 name); pair spans then count hours, not whole days.
  std::optional<double> time_s;
  bool sar = false;  ///< recognised as a SAR product (correlate::inspect_product)

  /// The key of the acquisition geometry: pairs are formed only within one track when images say which
  /// ("R108/T32TLR"); empty when the image carries no orbit/tile information.
  std::string track() const;
};

struct ImageSetOptions {
  /// Skip images that cannot be opened as rasters (reported in ImageSet::skipped) instead of failing.
  bool skip_bad = false;
  /// Open every image to check it is a readable raster of the same size and CRS as the first one.
  bool check_rasters = true;
  void validate() const {}
};

struct ImageSet {
  std::vector<Image> images;  ///< sorted by date (then track, then path)
  std::vector<std::string>
      skipped;  ///< "path: reason" for images left out (--skip-bad, undated folder files)

  std::size_t size() const { return images.size(); }
  std::vector<io::Date> dates() const;
};

/// Expands inputs into files: a folder gives its image files (.tif .tiff .jp2 .jpg .jpeg .png .vrt, and
/// Sentinel-1 products: S1*.zip files and *.SAFE folders; not recursive, sorted), a pattern with * or ? is
/// matched against the files (and SAFE folders) of its folder, a file is kept, and so is a SAFE folder
/// (one holding manifest.safe) named directly.
/// Throws IoError naming an input that does not exist or a pattern/folder that matches nothing.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

/// Reads a CSV manifest with a header row: columns `path` and `date` (YYYY-MM-DD or YYYYMMDD) required,
/// `orbit`, `tile`, `sensor` optional, in any order. Relative paths are relative to the manifest's folder.
/// Throws IoError (unreadable) or FormatError naming the file, line and column.
std::vector<Image> read_manifest(const std::string& csv_path);

/// Builds the image set of `inputs`: one .csv manifest, or files/folders/patterns whose dates come from
/// io::acquisition_date(). Files found by expanding a folder or pattern that carry no date at all (a
/// mask beside the images, say) are left out and listed in `skipped`; a file named explicitly without a
/// date, or with conflicting dates, is a FormatError naming it. Two images of one track on the same date
/// are an InvalidArgument naming both. With check_rasters, an unreadable image is an error naming it
/// (or skipped with skip_bad), and images of a different size or CRS than the first are InvalidArgument.
/// SAR products (correlate::inspect_product) carry their acquisition time to the second, their relative
/// orbit as the orbit ("R071"; SAFE manifest or the Sentinel-1 name's absolute orbit) and their platform
/// as the sensor; two images of one track on the same day are then refused only when their times are
/// equal, and those georeferenced by GCPs only are exempt from the same-grid check (the pipeline warps the
/// whole series onto one map grid, correlate::series_map_grid).
ImageSet load_image_set(const std::vector<std::string>& inputs, const ImageSetOptions& options = {});

}  // namespace deforma::timeseries
