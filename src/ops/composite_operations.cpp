// `deforma composite`: monthly cloud-free syntheses of surface-reflectance scenes (docs/composite.md).
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/timeseries/composite.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool is_manifest(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  return ext == ".csv" || ext == ".CSV";
}

}  // namespace

void register_composite_operation(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "composite";
  op.summary = "Monthly cloud-free syntheses of surface-reflectance scenes with their cloud masks";
  op.description =
      "For each month, the weighted mean of the clear observations of the scenes within --window-days "
      "centred on "
      "the 15th (weights 1 - |date - centre| / (window / 2)); clear = the Sentinel-2 L2A scene "
      "classification is "
      "not no data (0), saturated (1), cloud shadow (3), cloud (8, 9), cirrus (10), nor snow (11) with "
      "--mask-snow, and every band has a value. Writes OUTDIR/composite_YYYY-MM.tif (COG) per month with one "
      "band per input band (input units), clear_count and date_offset_days (weighted mean date minus the "
      "central "
      "date). Scenes: Sentinel-2 L2A SAFE folders, or one CSV manifest with columns date,scl,BAND... "
      "Streamed by windows within --ram; see docs/composite.md.";
  op.params = {
      ParamDecl::argument("scenes", ParamType::kList,
                          "Sentinel-2 L2A SAFE folders, or one CSV manifest (date,scl,BAND1,BAND2...)")
          .as_input(),
      ParamDecl::option("output", ParamType::kPath, "output folder")
          .alias("o")
          .mandatory()
          .as_output("inode/directory"),
      ParamDecl::option("bands", ParamType::kString, "SAFE folders: bands to composite, comma-separated")
          .defaults_to("B02,B03,B04"),
      ParamDecl::option("resolution", ParamType::kInt,
                        "SAFE folders: resolution (20 or 60, where SCL exists)")
          .in_unit("m")
          .defaults_to("20")
          .between(20, 60),
      ParamDecl::option("window-days", ParamType::kDouble,
                        "length of the window around the 15th of each month")
          .in_unit("days")
          .defaults_to("45")
          .between(1, 366),
      ParamDecl::option(
          "months", ParamType::kString,
          "months to synthesize, YYYY-MM comma-separated (default: every month the scenes span)"),
      ParamDecl::option("mask-snow", ParamType::kBool, "count snow and ice (SCL 11) as not clear"),
      ParamDecl::option("band-nodata", ParamType::kDouble,
                        "band value meaning no data besides the rasters' own nodata (Sentinel-2: 0)")
          .defaults_to("0"),
  };
  op.examples = {
      "deforma composite S2*_MSIL2A_*.SAFE -o monthly --resolution 20 --bands B02,B03,B04,B08",
      "deforma composite scenes.csv -o monthly --window-days 31 --months 2022-09,2022-10 --mask-snow",
  };
  op.run = [](const ParamValues& p, RunContext& context) {
    const auto inputs = p.get_list("scenes");
    timeseries::CompositeOptions o;
    std::vector<timeseries::CompositeScene> scenes;
    if (inputs.size() == 1 && is_manifest(inputs.front())) {
      scenes = timeseries::scenes_from_manifest(inputs.front(), o.band_names);
    } else {
      o.band_names = split_commas(p.get_string("bands"));
      if (o.band_names.empty()) throw InvalidArgument("--bands: give at least one band (B02,B03,B04)");
      scenes = timeseries::scenes_from_safe(inputs, o.band_names, static_cast<int>(p.get_int("resolution")));
    }
    o.window_days = p.get_double("window-days");
    o.mask_snow = p.get_bool("mask-snow");
    o.band_nodata = p.get_double("band-nodata");
    if (p.has("months")) {
      for (const auto& m : split_commas(p.get_string("months"))) {
        try {
          o.months.push_back(io::Date::parse(m + "-01"));
        } catch (const Error&) {
          throw InvalidArgument(fmt::format("--months: '{}' is not a month (expected YYYY-MM)", m));
        }
      }
    }
    o.output_dir = p.get_string("output");
    o.command_line = context.command_line;
    o.parameters = p.to_json();
    return timeseries::composite_scenes(scenes, o, context);
  };
  registry.add(std::move(op));
}

}  // namespace deforma::ops
