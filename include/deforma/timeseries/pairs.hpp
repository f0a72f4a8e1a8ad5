#pragma once
// Pair networks: which images are matched with which. A Pair is a work unit described by data (paths,
// dates, an id usable as a file stem); the pair table CSV carries pairs between the steps of a pipeline
// (pairs -> correlation -> filtering -> inversion). Its columns (docs/timeseries.md):
//   id, ref_path, sec_path, ref_date, sec_date, result_path[, weight]
// result_path is the per-pair displacement raster (empty before correlation); weight (default 1) is the
// pair's quality weight in the inversion. Relative paths are relative to the CSV's folder.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "deforma/io/dates.hpp"
#include "deforma/timeseries/epoch.hpp"
#include "deforma/timeseries/image_set.hpp"

namespace deforma::timeseries {

enum class PairDirection {
  kForward,   ///< reference earlier, secondary later (displacements forward in time)
  kBackward,  ///< reference later, secondary earlier
  kBoth,      ///< both orders (twice the pairs; each measured both ways)
};

/// Parses "forward", "backward" or "both"; throws InvalidArgument naming `parameter`.
PairDirection parse_pair_direction(const std::string& text, const std::string& parameter = "direction");
std::string to_string(PairDirection direction);

/// GDM-OPT-style matching rules. A candidate pair (i, j), i earlier than j in one track, is kept when
/// every given rule holds: min_step <= j - i <= max_step (in acquisitions of that track) and
/// min_days <= days <= max_days; a zero maximum means no limit.
struct PairNetworkOptions {
  int min_step = 1;       ///< minimum matching range, acquisitions
  int max_step = 3;       ///< maximum matching range, acquisitions (0 = unlimited)
  double min_days = 0.0;  ///< minimum interval, days
  double max_days = 0.0;  ///< maximum interval, days (0 = unlimited)
  PairDirection direction = PairDirection::kForward;
  int max_pairs_per_image = 0;  ///< cap on pairs an image takes part in (0 = none); shortest kept first
  bool same_track_only = true;  ///< pair only images of the same orbit/tile when their metadata say so

  /// Throws InvalidArgument naming the parameter (min-step, max-step, min-days, max-days, max-pairs).
  void validate() const;
};

struct Pair {
  std::string id;  ///< "20160718_20160803" (+ "_<track>" or "_b" when needed to be unique)
  std::string ref_path;
  std::string sec_path;
  io::Date ref_date;
  io::Date sec_date;
  std::string result_path;  ///< per-pair displacement raster; empty until correlated
  double weight = 1.0;      ///< quality weight in the inversion (> 0)

  /// Acquisition moments to the second (seconds since 1970-01-01 UTC) when both images carry one (SAR).
  std::optional<double> ref_time_s, sec_time_s;

  /// Signed days from reference to secondary (negative for backward pairs).
  long long days() const { return io::days_between(ref_date, sec_date); }
  /// Signed time from reference to secondary in days: to the second when both times are known (a same-day
  /// SAR pair 4 h apart spans 0.17 days), else whole days.
  double span_days() const {
    if (ref_time_s && sec_time_s) return (*sec_time_s - *ref_time_s) / 86400.0;
    return static_cast<double>(days());
  }
  /// span_days() in years of 365.25 days, the time unit of velocities.
  double span_years() const { return span_days() / 365.25; }
};

/// Pair selection by cloud cover over an area of interest (GDM-Survey's rule): each image's cloud mask
/// (io::find_cloud_mask: Sentinel-2 SCL, Landsat QA_PIXEL) counted inside the aoi.
struct CloudSelection {
  double max_cloud_percent = 100.0;  ///< images cloudier than this on the aoi are left out
  std::string aoi;  ///< WKT polygon, GeoJSON geometry or bbox "w,s,e,n" (WGS84); empty = whole
};

/// Leaves out of `images` those whose cloud cover on the aoi is above the threshold, and those whose mask
/// has no valid pixel inside the aoi. Returns one line per image left out, saying which and why. Throws
/// InvalidArgument naming the first image without a cloud mask (and where masks are looked for), or a
/// malformed aoi.
std::vector<std::string> drop_cloudy_images(ImageSet& images, const CloudSelection& selection);

/// Forms the pairs of `images` under `options`, ordered by reference date then secondary date. Images
/// with times to the second give pairs with those times (Pair::span_days): min_days/max_days compare
/// the exact span, and same-day pairs hours apart are kept. Throws
/// InvalidArgument when there are fewer than two images or no pair satisfies the rules (saying which).
std::vector<Pair> build_pair_network(const ImageSet& images, const PairNetworkOptions& options);

/// Writes the pair table CSV atomically. Paths are written as given.
void write_pair_table(const std::string& csv_path, const std::vector<Pair>& pairs);

/// Reads a pair table CSV (header required; columns in any order; extra columns ignored). Relative paths
/// are resolved against the CSV's folder. Throws IoError/FormatError naming the file, line and column.
std::vector<Pair> read_pair_table(const std::string& csv_path);

/// The distinct dates of `pairs`, sorted, and for each pair the indices of its reference and secondary
/// dates in that list.
std::vector<io::Date> network_dates(const std::vector<Pair>& pairs,
                                    std::vector<std::pair<int, int>>* indices = nullptr);

/// The time axis of the inversion of `pairs`: their distinct epochs, sorted, and for each pair the indices
/// of its reference and secondary epochs in that list. Pairs with times to the second (ref_time_s and
/// sec_time_s) give instants, so two images of one day at different times are two epochs; pairs without
/// give their dates, exactly network_dates(). Instants less than a millisecond apart are one epoch. A
/// network mixing pairs with and without times is an InvalidArgument naming the first pair without times
/// and its images: a date's time of day is unknown, and counting it as 00:00 would put an error of up to
/// a day into every span that joins it to an instant.
std::vector<Epoch> network_epochs(const std::vector<Pair>& pairs,
                                  std::vector<std::pair<int, int>>* indices = nullptr);

/// Number of connected components of the network graph (dates as vertices, pairs as edges). More than
/// one means the network is disconnected: the inversion then relies on its temporal regularization.
int count_components(int date_count, const std::vector<std::pair<int, int>>& edges);

/// Draws the network (dates on the time axis, one arc per pair) and writes it as a PNG.
void write_pair_network_png(const std::string& png_path, const std::vector<Pair>& pairs,
                            const std::string& title = "pair network");

}  // namespace deforma::timeseries
