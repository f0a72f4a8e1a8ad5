#pragma once
// `deforma survey`: one velocity product over an area of interest that spans several Sentinel-2 tiles and
// relative orbits (GDM-Survey's workflow, docs/survey.md):
//   scenes (files, folders, a manifest with orbit/tile columns, or scenes chosen from the catalogue)
//   -> cloud cover on the aoi from each scene's mask, scenes above the threshold dropped (reported)
//   -> the scenes grouped by track (relative orbit and tile): pairs are formed within one track only
//   -> each track's network through the pipeline (pipeline.hpp) into tracks/<track>/, its pairs and
//      inversion blocks run by the track options' executor (threads here, or Slurm array tasks), one track
//      after the other; with glacier outlines, tracks whose tile has no ice within the buffer left out
//   -> the tracks' velocity products mosaicked onto one grid, overlaps combined by inverse-variance
//      weighting -> velocity.tif (COG + provenance), survey.json, a static STAC catalog
//   -> with glacier outlines, the statistics per glacier of the mosaic.
// Output folder layout:
//   scenes.csv                     every scene: track, date, cloud % on the aoi, kept or why dropped
//   tracks/<track>/                one pipeline output folder per track (resumable as the pipeline's)
//   velocity.tif, velocity.png     the mosaic and its quicklook
//   glaciers/glaciers.csv, .json   with glacier outlines: the statistics per glacier of the mosaic
//   survey.json                    the run summary
//   catalog.json, velocity/velocity.json   the STAC catalog of the mosaic
#include <optional>
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/pipeline/pipeline.hpp"
#include "deforma/timeseries/image_set.hpp"

namespace deforma::pipeline {

/// A scene chosen elsewhere (the catalogue), with its cloud cover on the aoi when already known.
struct SurveyScene {
  timeseries::Image image;  ///< path, date, orbit, tile (the track is orbit/tile)
  /// Cloud cover (%) on the aoi; nullopt = computed from the mask found beside the image.
  std::optional<double> cloud_percent;
  /// Why the scene cannot be used (its cloud mask misses the aoi...); empty = usable.
  std::string problem;
};

struct SurveyOptions {
  /// Image files, folders, glob patterns or one CSV manifest (path,date,orbit,tile[,sensor]); or empty when
  /// `scenes` are given.
  std::vector<std::string> inputs;
  std::vector<SurveyScene> scenes;
  std::string output_dir;
  /// The area of interest, WGS84: WKT polygon, GeoJSON geometry or bbox "w,s,e,n". Where cloud cover is
  /// counted; empty = each scene as a whole.
  std::string aoi;
  /// Scenes cloudier than this on the aoi are dropped; nullopt = no cloud selection.
  std::optional<double> max_cloud_percent;
  /// The settings of each track's pipeline run (network, correlation, filter, inversion, glacier outlines,
  /// executor and Slurm options...); its inputs, output folder and cloud selection are the survey's own.
  PipelineOptions track;
  /// Pixel size of the mosaic in the units of its CRS; 0 = the finest of the tracks' products.
  double mosaic_pixel_size = 0.0;
  bool quicklooks = true;
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

/// One velocity product to mosaic, with its bands found by name.
struct MosaicInput {
  std::string path;   ///< a velocity.tif of the pipeline (bands velocity_east_m_per_yr...)
  std::string label;  ///< the track, for messages
};

struct MosaicOptions {
  std::string output_path;
  double pixel_size = 0.0;  ///< 0 = the finest of the inputs
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();
  std::string start_date, end_date;  ///< ISO dates written into the metadata
};

/// Mosaics velocity products onto one north-up grid in the CRS of the first, covering them all and aligned
/// on the first's pixels: per cell, each input's velocity weighted by the inverse of its variance
/// (velocity_<c>_std squared; an input without a sigma at a cell counts only where no input has one). Bands:
/// velocity_east_m_per_yr, velocity_north_m_per_yr, velocity_magnitude_m_per_yr, their _std_, and
/// `tracks` (inputs combined at the cell). Throws InvalidArgument for inputs without georeferencing or
/// without the velocity bands (naming the file). Returns counts (cells, valid, overlap).
Summary mosaic_velocity_products(const std::vector<MosaicInput>& inputs, const MosaicOptions& options,
                                 RunContext& context);

/// Runs the survey; the Summary holds counts (scenes, dropped, tracks, pairs), the tracks' summaries in
/// details and the outputs. Throws InvalidArgument when no track keeps two scenes (saying what was dropped).
Summary run_survey(const SurveyOptions& options, RunContext& context);

}  // namespace deforma::pipeline
