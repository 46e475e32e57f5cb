{
  "targets": [
    {
      "target_name": "ctclip",
      "sources": ["<!@(node scripts/gyp-config.js sources)"],
      "include_dirs": ["<!@(node scripts/gyp-config.js include_dirs)"],
      "defines": ["<!@(node scripts/gyp-config.js defines)"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<!@(node scripts/gyp-config.js cflags)"],
      "ldflags": ["<!@(node scripts/gyp-config.js ldflags)"],
      "libraries": ["<!@(node scripts/gyp-config.js libraries)"]
    }
  ]
}
