#pragma once
// The pieces of staged files that the COG writer shares (it stages two files of its own: the tiled
// GeoTIFF receiving windows and the converted COG). Internal to io.
#include <string>

namespace deforma::io {

/// A name in the same folder as `final_path` (so that rename is atomic), hidden, unique per process/call.
std::string temporary_name(const std::string& final_path, const char* tag);

/// Removes `path` if it exists, ignoring errors ("" is ignored).
void remove_quietly(const std::string& path);

/// Moves the finished file `from` onto `to`, or hands it to the run's OutputCommitGroup when one holds
/// `to`. IoError (after removing `from`) when the target became something other than a file or the
/// rename fails.
void rename_into_place(const std::string& from, const std::string& to);

}  // namespace deforma::io
