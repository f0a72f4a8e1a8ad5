#pragma once
// Each module's operations, registered by name (internal header).
#include <string>

#include "deforma/core/operation.hpp"

namespace deforma::ops {

/// Media type of the Cloud-Optimized GeoTIFFs the operations write.
inline constexpr const char* kCogMediaType = "image/tiff; application=geotiff; profile=cloud-optimized";

void register_io_operations(OperationRegistry& registry);
void register_correlate_operations(OperationRegistry& registry);
void register_filter_operations(OperationRegistry& registry);
void register_pipeline_operations(OperationRegistry& registry);
void register_timeseries_operations(OperationRegistry& registry);
/// `deforma describe`: the operations' declarations as docs pages or JSON process descriptions.
void register_describe_operation(OperationRegistry& registry);
/// File name of an operation's page in docs/commands ("egms ortho" -> "egms-ortho.md").
std::string command_page_file_name(const std::string& operation);
void register_egms_operations(OperationRegistry& registry);
/// Field workflows: decompose (3-D displacement), fault-profile (co-seismic offsets).
void register_workflow_operations(OperationRegistry& registry);
void register_catalog_operations(OperationRegistry& registry);
/// `composite`: monthly cloud-free syntheses (registered with the field workflows).
void register_composite_operation(OperationRegistry& registry);
/// `survey`: one velocity product over several tiles and relative orbits (registered with the field
/// workflows).
void register_survey_operation(OperationRegistry& registry);

}  // namespace deforma::ops
