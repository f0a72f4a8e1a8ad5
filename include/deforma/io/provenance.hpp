#pragma once
// The provenance of an output: the software and its version, the command line, the parameters and the
// inputs (with their size and modification time), written into the output's metadata.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deforma::io {

/// Where an output came from, written into its metadata.
struct Provenance {
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();
  std::vector<std::string> inputs;  ///< paths; size and modification time are added when written

  /// {"software": "deforma", "version": ..., "command": ..., "parameters": ..., "inputs": [...]}
  nlohmann::json to_json() const;
};

/// Adds provenance as metadata items DEFORMA_VERSION, DEFORMA_COMMAND, DEFORMA_PARAMETERS (JSON) and
/// DEFORMA_INPUTS (JSON with size and mtime) on an open GDALDataset*.
void write_provenance_metadata(void* gdal_dataset, const Provenance& provenance);

}  // namespace deforma::io
