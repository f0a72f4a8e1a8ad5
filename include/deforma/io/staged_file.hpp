#pragma once
// Outputs that are never found half-written: files written under a hidden temporary name beside their
// final name and renamed into place when complete, for any format, and small text/JSON records written
// the same way.
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace deforma::io {

/// A file written under a hidden temporary name beside its final name (same folder, so that the rename is
/// atomic) and moved into place by commit(); a StagedFile destroyed before commit() removes its temporary
/// file. The building block of every output that must never be found half-written under its final name.
class StagedFile {
 public:
  /// Checks that the parent folder of `final_path` exists and is writable (IoError naming it).
  explicit StagedFile(std::string final_path, const char* tag = "partial");
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  /// Renames the temporary file to the final name (replacing an older file). IoError on failure, after
  /// which the temporary file is removed.
  void commit();
  /// Removes the temporary file now.
  void discard();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool done_ = false;
};

/// Writes to `final_path` through a temporary name in the same folder: `writer` receives the temporary
/// path; after it returns, the file is renamed; on exception it is removed. For any output format.
void write_atomically(const std::string& final_path, const std::function<void(const std::string&)>& writer);

/// Writes `text` to `path` through a temporary name in the same folder and a rename, so a reader never sees
/// half of it. Made for small records written often: no scan for stale temporaries. Throws IoError naming
/// the file when it cannot be written (disk full, folder missing or not writable).
void write_text_atomically(const std::string& path, const std::string& text);

/// The JSON document in `path`; null when the file is missing or not (yet) valid JSON.
nlohmann::json read_json_file(const std::string& path);

/// Throws IoError naming the folder when the parent folder of `path` is missing or not writable.
void check_writable_parent(const std::string& path, const std::string& what = "output");

}  // namespace deforma::io
