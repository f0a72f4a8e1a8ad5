#pragma once
// Checks on the files an operation reads and writes, made once before any work: inputs must be regular
// files or folders (a FIFO or a device would block or never end), outputs must not be devices, FIFOs,
// sockets or symbolic links (a rename onto them would replace the node itself), no output may be one of
// the inputs or another output, and every output's folder must exist and be writable.
//
// OutputCommitGroup holds back the final renames of a run's declared outputs so that the files a run
// makes together (a COG and its quicklook) appear all at once, or not at all.
#include <string>
#include <utility>
#include <vector>

namespace deforma {
struct OperationDecl;
class ParamValues;
struct RunContext;
struct Summary;
}  // namespace deforma

namespace deforma::io {

/// Throws IoError naming `path` (and `what`, e.g. "--mask") when it exists and is neither a regular file
/// nor a folder: FIFO, character or block device, socket. Never opens the file, so a FIFO is refused at
/// once. Missing files and GDAL virtual paths (/vsizip/..., NETCDF:...) are left to the reader.
void check_input_path(const std::string& path, const std::string& what = "input");

/// Throws IoError when `path` exists and is not a regular file (folder, device, FIFO, socket), or is a
/// symbolic link: outputs are written under a temporary name and renamed, which would replace the link
/// rather than write through it, so links are refused with the path they point to.
void check_output_target(const std::string& path, const std::string& what = "output");

/// True when both paths exist and are the same file (same device and inode: hard links, symlinks and
/// `./` spellings included).
bool same_file(const std::string& a, const std::string& b);

/// Removes temporary files left beside `final_path` by earlier runs that were killed
/// (".NAME.staging-PID-N.EXT", ".NAME.partial-PID[-N].EXT" and their ".aux.xml"), when process PID is
/// gone. Returns how many were removed.
int remove_stale_temporaries(const std::string& final_path);

/// Checks every path parameter of `op` in `values` before the run: inputs with check_input_path, outputs
/// with check_output_target and their folders for writability (IoError), and refuses an output that is an
/// input or another output (InvalidArgument naming both parameters). Removes stale temporaries of the
/// outputs.
void check_operation_paths(const OperationDecl& op, const ParamValues& values);

/// The file outputs declared by `op` that `values` names (outputs of media type "inode/directory" and
/// file-name prefixes excluded).
std::vector<std::string> declared_file_outputs(const OperationDecl& op, const ParamValues& values);

/// The file-name prefixes declared as outputs by `op` that `values` names (PREFIX of PREFIX_U.tif...).
std::vector<std::string> declared_output_prefixes(const OperationDecl& op, const ParamValues& values);

/// While alive, StagedFile::commit and CogWriter::finish do not rename a finished file onto one of
/// `final_paths` (or its sidecar: ".aux.xml", and ".xml" beside a ".csv"): they hand it to the group, which
/// renames them all in commit() or removes them when destroyed without it. Several groups may live at once
/// (concurrent runs of a service), as long as they name different files.
class OutputCommitGroup {
 public:
  explicit OutputCommitGroup(const std::vector<std::string>& final_paths,
                             const std::vector<std::string>& prefixes = {});
  OutputCommitGroup(const OutputCommitGroup&) = delete;
  OutputCommitGroup& operator=(const OutputCommitGroup&) = delete;
  ~OutputCommitGroup();

  /// Renames every held file into place. IoError when one fails (the others are still attempted).
  void commit();

  /// Used by the staging code: when `final_path` belongs to a live group, takes `temp_path` and returns
  /// true; the caller must then not rename it.
  static bool hold(const std::string& temp_path, const std::string& final_path);

 private:
  std::vector<std::string> expected_;                      // normalised final paths
  std::vector<std::string> prefixes_;                      // normalised prefixes, "_" included
  std::vector<std::pair<std::string, std::string>> held_;  // (temporary, final)
};

/// Runs `op` the way every caller must (the command line and the service's job processes alike): its paths
/// checked before any work (check_operation_paths), its runtime applied to it alone (the thread limit of
/// `context.threads` as a task arena, the GDAL block cache from `context.ram_budget_mb`, cancellation by
/// `context.stop` or the process-wide request, seen by the operation through its Progress), and the files
/// it declares committed together once it has run to the end without being cancelled, or not at all
/// (OutputCommitGroup). Throws InvalidArgument for threads < 0.
Summary run_operation(const OperationDecl& op, const ParamValues& values, RunContext& context);

}  // namespace deforma::io
