// The JS handle of a c10d process group (created by distInit in dist_binding.cc, used by ctclip_binding.cc).
#pragma once

#include <napi.h>

#include <memory>

#include "dist/group.h"

namespace ctclip {

Napi::Object WrapGroup(Napi::Env env, std::shared_ptr<dist::Group> group);
// The group behind a handle; ARGUMENT_ERROR naming `what` for anything else or a shut-down group.
std::shared_ptr<dist::Group> GroupFromValue(const Napi::Value& value, const char* what);

}  // namespace ctclip
