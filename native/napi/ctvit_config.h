// Parsing of the CTViT configuration object (shared by createCTViT and the CT-CLIP image encoder config).
#pragma once

#include <napi.h>

#include "model/ctvit.h"

namespace ctclip {

// ARGUMENT_ERROR naming the key (`ctvit config: '<key>' …`). `seed` is required only when `requireSeed`.
model::CTViTConfig ParseCTViTConfig(const Napi::Value& value, bool requireSeed);

}  // namespace ctclip
