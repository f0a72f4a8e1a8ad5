#include "deforma/io/staged_file.hpp"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/files.hpp"
#include "staging.hpp"

namespace deforma::io {
namespace fs = std::filesystem;

std::string temporary_name(const std::string& final_path, const char* tag) {
  static std::atomic<unsigned> counter{0};
  const fs::path p(final_path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  return (dir / fmt::format(".{}.{}-{}-{}{}", p.stem().string(), tag, ::getpid(), counter++, p.extension().string()))
      .string();
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  if (!path.empty()) fs::remove(path, ec);
}

void rename_into_place(const std::string& from, const std::string& to) {
  // Outputs a run makes together are renamed together, at its end.
  if (OutputCommitGroup::hold(from, to)) return;
  // Looked at again at the last moment: a device or FIFO made since the start must not be replaced.
  try {
    check_output_target(to);
  } catch (const Error&) {
    remove_quietly(from);
    throw;
  }
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) {
    remove_quietly(from);
    throw IoError(fmt::format("{}: cannot move the finished file into place: {}", to, ec.message()));
  }
}

void check_writable_parent(const std::string& path, const std::string& what) {
  if (path.empty()) throw InvalidArgument(fmt::format("{}: empty file name", what));
  // First: a device or FIFO in a folder the user cannot write (/dev) is named for what it is.
  if (!fs::is_directory(path)) check_output_target(path, what);
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw IoError(fmt::format("{}: folder {} does not exist", path, dir.string()));
  if (!fs::is_directory(dir, ec)) throw IoError(fmt::format("{}: {} is not a folder", path, dir.string()));
  if (::access(dir.c_str(), W_OK) != 0) {
    throw IoError(fmt::format("{}: folder {} is not writable", path, dir.string()));
  }
  if (fs::is_directory(p, ec)) throw IoError(fmt::format("{}: is a folder, expected a file name for the {}", path, what));
}

StagedFile::StagedFile(std::string final_path, const char* tag) : final_path_(std::move(final_path)) {
  check_writable_parent(final_path_);
  remove_stale_temporaries(final_path_);
  temp_path_ = temporary_name(final_path_, tag);
}

StagedFile::~StagedFile() {
  if (!done_) remove_quietly(temp_path_);
}

void StagedFile::commit() {
  if (done_) throw IoError(fmt::format("{}: committed twice or after discard", final_path_));
  done_ = true;
  rename_into_place(temp_path_, final_path_);
}

void StagedFile::discard() {
  done_ = true;
  remove_quietly(temp_path_);
}

void write_atomically(const std::string& final_path, const std::function<void(const std::string&)>& writer) {
  StagedFile file(final_path);
  writer(file.temp_path());  // an exception leaves the StagedFile to remove the temporary file
  file.commit();
}

void write_text_atomically(const std::string& path, const std::string& text) {
  // Small records written often (a job's progress, one per work unit in a folder of thousands): a unique
  // temporary name and a rename, without StagedFile's scan of the folder for stale temporaries.
  const std::string tmp = temporary_name(path, "partial");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      out.close();
      remove_quietly(tmp);
      throw IoError(fmt::format("{}: cannot write (disk full or folder not writable?)", path));
    }
  }
  rename_into_place(tmp, path);
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  std::stringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, false);
  return json.is_discarded() ? nlohmann::json(nullptr) : json;
}

}  // namespace deforma::io
