#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/core/operation.hpp"

namespace deforma {
namespace {

std::vector<ParamDecl> sample_params() {
  return {
      ParamDecl::argument("input", ParamType::kPath, "input raster"),
      ParamDecl::option("chip", ParamType::kInt, "template size").in_unit("px").defaults_to("32").between(8, 512),
      ParamDecl::option("min-snr", ParamType::kDouble, "SNR threshold").defaults_to("1.5").at_least(0.0),
      ParamDecl::option("method", ParamType::kChoice, "matcher").defaults_to("ncc").one_of({"ncc", "phase", "flow"}),
      ParamDecl::option("velocity", ParamType::kBool, "write m/yr"),
      ParamDecl::option("images", ParamType::kList, "more files"),
  };
}

TEST(ParamValues, AppliesDefaultsAndParsesTypes) {
  const auto values = ParamValues::parse(sample_params(), {{"input", {"a.tif"}}, {"chip", {"64"}}});
  EXPECT_EQ(values.get_string("input"), "a.tif");
  EXPECT_EQ(values.get_int("chip"), 64);
  EXPECT_DOUBLE_EQ(values.get_double("min-snr"), 1.5);
  EXPECT_EQ(values.get_string("method"), "ncc");
  EXPECT_FALSE(values.get_bool("velocity"));
  EXPECT_TRUE(values.get_list("images").empty());
  const auto json = values.to_json();
  EXPECT_EQ(json["chip"], 64);
  EXPECT_EQ(json["method"], "ncc");
}

TEST(ParamValues, RejectsBadValuesNamingTheParameter) {
  auto expect_message = [](const std::map<std::string, std::vector<std::string>>& raw, const std::string& needle) {
    try {
      ParamValues::parse(sample_params(), raw);
      FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_message({}, "input is required");
  expect_message({{"input", {"a"}}, {"chip", {"abc"}}}, "--chip: expected an integer");
  expect_message({{"input", {"a"}}, {"chip", {"4"}}}, "--chip: 4 is out of range");
  expect_message({{"input", {"a"}}, {"min-snr", {"nan"}}}, "--min-snr: expected a number");
  expect_message({{"input", {"a"}}, {"method", {"sad"}}}, "'sad' is not one of ncc, phase, flow");
  expect_message({{"input", {"a"}}, {"bogus", {"1"}}}, "unknown parameter 'bogus'");
}

TEST(ParamValues, FromJsonAcceptsNumbersBooleansAndArrays) {
  nlohmann::json body = {{"input", "b.tif"}, {"chip", 16}, {"velocity", true}, {"images", {"x", "y"}}};
  const auto values = ParamValues::from_json(sample_params(), body);
  EXPECT_EQ(values.get_int("chip"), 16);
  EXPECT_TRUE(values.get_bool("velocity"));
  EXPECT_EQ(values.get_list("images").size(), 2u);
  EXPECT_THROW(ParamValues::from_json(sample_params(), nlohmann::json::array()), InvalidArgument);
}

TEST(Describe, JsonAndMarkdownComeFromTheDeclaration) {
  OperationDecl op;
  op.name = "sample";
  op.summary = "A sample operation";
  op.params = sample_params();
  op.examples = {"deforma sample a.tif --chip 64"};
  const auto json = describe_json(op);
  EXPECT_EQ(json["id"], "sample");
  EXPECT_EQ(json["inputs"]["chip"]["schema"]["type"], "integer");
  EXPECT_EQ(json["inputs"]["chip"]["schema"]["minimum"], 8);
  EXPECT_EQ(json["inputs"]["chip"]["unit"], "px");
  EXPECT_EQ(json["inputs"]["method"]["schema"]["enum"].size(), 3u);
  EXPECT_EQ(json["inputs"]["input"]["minOccurs"], 1);
  const auto md = describe_markdown(op);
  EXPECT_NE(md.find("`--chip`"), std::string::npos);
  EXPECT_NE(md.find("deforma sample a.tif --chip 64"), std::string::npos);
}

TEST(Registry, FindsAndRejectsDuplicates) {
  OperationRegistry registry;
  OperationDecl op;
  op.name = "x";
  registry.add(op);
  EXPECT_NE(registry.find("x"), nullptr);
  EXPECT_EQ(registry.find("y"), nullptr);
  EXPECT_THROW(registry.add(op), InvalidArgument);
}

}  // namespace
}  // namespace deforma

namespace deforma {
namespace {

// OGC API - Processes 1.0 processDescription: id without spaces, typed defaults, outputs apart from inputs.
TEST(Operation, DescribesAnOgcProcess) {
  OperationDecl op;
  op.name = "egms sample";
  op.summary = "A sample operation";
  op.params = sample_params();
  op.params.front().as_input();
  op.params.push_back(ParamDecl::option("output", ParamType::kPath, "result").mandatory().as_output("image/png"));
  op.params.push_back(ParamDecl::option("json", ParamType::kBool, "print JSON"));
  const auto json = describe_json(op);
  EXPECT_EQ(json["id"], "egms-sample");
  EXPECT_EQ(process_id(op), "egms-sample");
  for (const char* key : {"version", "title", "description", "jobControlOptions", "outputTransmission"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
  EXPECT_TRUE(json["inputs"]["chip"]["schema"]["default"].is_number_integer());
  EXPECT_EQ(json["inputs"]["chip"]["schema"]["default"], 32);
  EXPECT_EQ(json["inputs"]["min-snr"]["schema"]["default"], 1.5);
  EXPECT_EQ(json["inputs"]["velocity"]["schema"]["default"], false);
  EXPECT_EQ(json["inputs"]["method"]["schema"]["default"], "ncc");
  // A dataset is a reference; an output is a result, never a client input; `json` is CLI-only.
  EXPECT_TRUE(json["inputs"]["input"]["schema"].contains("oneOf"));
  EXPECT_FALSE(json["inputs"].contains("output"));
  EXPECT_FALSE(json["inputs"].contains("json"));
  EXPECT_EQ(json["outputs"]["output"]["schema"]["contentMediaType"], "image/png");
  EXPECT_TRUE(json["outputs"].contains("summary"));
  EXPECT_EQ(json["jobControlOptions"], nlohmann::json({"async-execute", "dismiss"}));
  op.quick = true;
  EXPECT_EQ(describe_json(op)["jobControlOptions"][0], "sync-execute");
}

TEST(Registry, FindsServableProcessesById) {
  OperationRegistry registry;
  OperationDecl a;
  a.name = "egms sample";
  registry.add(a);
  OperationDecl meta;
  meta.name = "meta";
  meta.servable = false;
  registry.add(meta);
  ASSERT_NE(registry.find_process("egms-sample"), nullptr);
  EXPECT_EQ(registry.find_process("egms sample"), nullptr);
  EXPECT_EQ(registry.find_process("meta"), nullptr);
}

}  // namespace
}  // namespace deforma
