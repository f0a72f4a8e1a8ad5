// Every operation says which of its parameters are files it reads and which are files it writes: the HTTP
// service resolves the first within its data roots and places the second in the job's folder itself.
#include <gtest/gtest.h>

#include "deforma/ops.hpp"

namespace deforma {
namespace {

TEST(Declarations, EveryPathParameterHasARole) {
  for (const auto* op : builtin_operations().list()) {
    if (op->name == "describe") continue;  // a meta-operation, not a process
    for (const auto& p : op->params) {
      if (p.type != ParamType::kPath) continue;
      EXPECT_NE(p.role, ParamRole::kValue) << op->name << " --" << p.name << " reads or writes a file: say which";
    }
  }
}

TEST(Declarations, OutputsNameTheirMediaType) {
  int outputs = 0;
  for (const auto* op : builtin_operations().list()) {
    for (const auto& p : op->params) {
      if (p.role != ParamRole::kOutput) continue;
      ++outputs;
      EXPECT_FALSE(p.media_type.empty()) << op->name << " --" << p.name;
      EXPECT_TRUE(p.type == ParamType::kPath) << op->name << " --" << p.name << " is an output but not a path";
    }
  }
  EXPECT_GE(outputs, 10);
}

}  // namespace
}  // namespace deforma
