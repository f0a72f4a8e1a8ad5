// Fuzzes the service's reading of an execute request: the body's JSON against a process declaration
// (ParamValues::from_json, as the server calls it) and the resolution of dataset hrefs. A request may be
// refused (ApiError, or a deforma::Error), never crash; every file it resolves must lie inside a data root,
// the user's uploads or the user's own job, and every output inside the job's folder. The raw input is
// also resolved as an href by itself.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "deforma/core/error.hpp"
#include "deforma/core/operation.hpp"
#include "fuzz_support.hpp"
#include "service/request.hpp"

namespace {

namespace fs = std::filesystem;
using deforma::ParamDecl;
using deforma::ParamType;

// A process with a parameter of every type and role the server meets.
deforma::OperationDecl make_process() {
  deforma::OperationDecl op;
  op.name = "fuzz process";
  op.params = {
      ParamDecl::argument("reference", ParamType::kPath, "a dataset").as_input(),
      ParamDecl::option("stack", ParamType::kList, "datasets").as_input(),
      ParamDecl::option("chip", ParamType::kInt, "chip size").in_unit("px").defaults_to("32").between(8, 512),
      ParamDecl::option("min-snr", ParamType::kDouble, "threshold").defaults_to("1.5").at_least(0),
      ParamDecl::option("method", ParamType::kChoice, "method").one_of({"ncc", "phase"}).defaults_to("ncc"),
      ParamDecl::option("label", ParamType::kString, "free text"),
      ParamDecl::option("robust", ParamType::kBool, "a flag"),
      ParamDecl::option("json", ParamType::kBool, "CLI printout"),
      ParamDecl::option("output", ParamType::kPath, "result")
          .as_output("image/tiff; application=geotiff")
          .mandatory(),
      ParamDecl::option("quicklook", ParamType::kPath, "preview").as_output("image/png"),
      ParamDecl::option("points", ParamType::kPath, "prefix").as_output("inode/directory"),
  };
  return op;
}

// A service layout in a temporary folder: a data root with a file and a link leading out, the user's
// uploads, a job of theirs and another user's job.
struct Layout {
  deforma::fuzz::InputFile scratch;
  fs::path base;
  deforma::service::HrefContext where;
  fs::path job_dir;

  Layout() {
    base = fs::canonical(fs::path(scratch.write("marker", "")).parent_path());
    const fs::path data = base / "data", uploads = base / "uploads" / "alice", jobs = base / "jobs";
    for (const auto& d : {data / "sub", uploads, jobs / "mine" / "outputs", jobs / "theirs" / "outputs"}) {
      fs::create_directories(d);
    }
    for (const auto& f : {data / "a.tif", data / "sub" / "b.tif", uploads / "up.tif",
                          jobs / "mine" / "outputs" / "output.tif",
                          jobs / "theirs" / "outputs" / "output.tif", base / "secret.txt"}) {
      std::ofstream(f) << "x";
    }
    std::error_code ec;
    fs::create_symlink(base / "secret.txt", data / "leak.tif", ec);
    fs::create_directory_symlink(base, data / "up", ec);
    where.own_base = "http://127.0.0.1:8080/";
    where.data_roots = {data};
    where.uploads_dir = uploads;
    where.jobs_dir = jobs;
    where.job_readable = [](const std::string& id) { return id == "mine"; };
    job_dir = jobs / "new";
  }

  bool allowed(const fs::path& p) const {
    using deforma::service::inside;
    return inside(p, where.data_roots.front()) || inside(p, where.uploads_dir) ||
           inside(p, where.jobs_dir / "mine");
  }
};

void check_resolved(const Layout& layout, const fs::path& p) {
  // A resolved file outside what the user may read is the service opening someone else's data.
  if (!layout.allowed(fs::weakly_canonical(p))) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deforma::fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const deforma::OperationDecl op = make_process();
  static const Layout layout;
  const std::string text(deforma::fuzz::as_text(data, size));
  using deforma::service::ApiError;
  try {
    const auto body = deforma::service::parse_execution_body("application/json", text);
    const auto parsed = deforma::service::parse_execution(op, body, layout.job_dir, layout.where);
    for (const char* name : {"reference"}) {
      if (parsed.values.contains(name)) check_resolved(layout, parsed.values[name].get<std::string>());
    }
    if (parsed.values.contains("stack")) {
      for (const auto& p : parsed.values["stack"]) check_resolved(layout, p.get<std::string>());
    }
    for (const auto& [name, out] : parsed.outputs.items()) {
      const fs::path p = layout.job_dir / out["path"].get<std::string>();
      if (!deforma::service::inside(p.lexically_normal(), layout.job_dir)) std::abort();
    }
    if (!parsed.values.contains("output")) std::abort();  // a required output is always placed
  } catch (const ApiError& e) {
    if (e.status != 400 && e.status != 415) std::abort();
  } catch (const deforma::Error&) {
  }
  try {
    check_resolved(layout, deforma::service::resolve_href(layout.where, "reference", text));
  } catch (const ApiError& e) {
    if (e.status != 400) std::abort();
  } catch (const deforma::Error&) {
  }
  return 0;
}
