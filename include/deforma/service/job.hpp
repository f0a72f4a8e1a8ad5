#pragma once
// A job's folder and the child-process side of a job. The service writes JOBDIR/job.json (the process id
// and the resolved parameter values, outputs placed inside JOBDIR) and runs `deforma job run JOBDIR` in a
// child process; the child rewrites JOBDIR/progress.json atomically as the operation advances and ends
// with JOBDIR/result.json (the run's summary) or JOBDIR/error.json (the error's kind and message).
// SIGTERM asks the child to stop: the operation sees Progress::cancelled() and throws Cancelled.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace deforma::service {

/// Runs the job described by DIR/job.json in this process and returns the process exit code
/// (deforma::ExitCode of the error, 0 on success). Never throws. DIR "-": the folder is read from a
/// line of standard input (a process the service starts ahead of need), and the output goes to DIR/job.log.
int run_job_folder(const std::filesystem::path& dir);

}  // namespace deforma::service
