// Cloud cover over an area of interest, from a scene's cloud mask asset; the counting itself is io's
// (shared with the pair selection of `pairs` and `pipeline`).
#include <filesystem>

#include <fmt/format.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"
#include "deforma/io/cloud_mask.hpp"

namespace deforma::catalog {

std::optional<double> cloud_cover_on(const nlohmann::json& item, const nlohmann::json& aoi,
                                     const std::vector<int>& classes) {
  if (!item.contains("assets") || !item["assets"].is_object() || !item["assets"].contains("cloud-mask")) {
    return std::nullopt;
  }
  const nlohmann::json& asset = item["assets"]["cloud-mask"];
  const std::string path = asset.is_object() ? asset.value("href", "") : "";
  if (path.empty()) return std::nullopt;
  if (!aoi.is_null()) geojson_to_wkb(aoi, "aoi");  // the catalogue's own check, with its reasons
  // Landsat Collection 2 QA_PIXEL and Collection 1 BQA hold bit flags (each its own layout); anything else
  // is a Sentinel-2 classification.
  const std::string name = std::filesystem::path(path).filename().string();
  io::CloudMaskKind kind = io::CloudMaskKind::kSentinel2Scl;
  if (name.find("QA_PIXEL") != std::string::npos)
    kind = io::CloudMaskKind::kLandsatQaPixel;
  else if (name.find("_BQA") != std::string::npos)
    kind = io::CloudMaskKind::kLandsatBqa;
  const io::CloudMask mask{path, kind};
  return io::cloud_cover_percent(mask, aoi.is_null() ? std::string() : aoi.dump(), classes);
}

}  // namespace deforma::catalog
