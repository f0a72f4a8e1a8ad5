#include "deforma/io/provenance.hpp"

#include <sys/stat.h>

#include <ctime>

#include <gdal_priv.h>

#include "deforma/io/dates.hpp"
#include "deforma/version.hpp"

namespace deforma::io {

nlohmann::json Provenance::to_json() const {
  nlohmann::json inputs_json = nlohmann::json::array();
  for (const auto& input : inputs) {
    nlohmann::json entry{{"path", input}};
    struct stat st {};
    if (::stat(input.c_str(), &st) == 0) {
      entry["size_bytes"] = static_cast<long long>(st.st_size);
      entry["modified"] = iso_utc(st.st_mtime);
    }
    inputs_json.push_back(entry);
  }
  return {{"software", "deforma"},
          {"version", kVersion},
          {"created", iso_utc(std::time(nullptr))},
          {"command", command_line},
          {"parameters", parameters},
          {"inputs", inputs_json}};
}

void write_provenance_metadata(void* gdal_dataset, const Provenance& provenance) {
  auto* ds = static_cast<GDALDataset*>(gdal_dataset);
  const auto j = provenance.to_json();
  ds->SetMetadataItem("DEFORMA_VERSION", kVersion);
  ds->SetMetadataItem("DEFORMA_CREATED", j["created"].get<std::string>().c_str());
  ds->SetMetadataItem("DEFORMA_COMMAND", provenance.command_line.c_str());
  ds->SetMetadataItem("DEFORMA_PARAMETERS", provenance.parameters.dump().c_str());
  ds->SetMetadataItem("DEFORMA_INPUTS", j["inputs"].dump().c_str());
}

}  // namespace deforma::io
