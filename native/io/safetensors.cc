#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "core/errors.h"
#include "io/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

namespace ctclip::io {

namespace {

[[noreturn]] void DataError(const std::string& path, const std::string& what) {
  throw NativeError("DATA_ERROR", "safetensors file " + path + ": " + what);
}

[[noreturn]] void IoError(const std::string& path, const std::string& what, int err) {
  throw NativeError("IO_ERROR",
                    "safetensors file " + path + ": " + what + (err ? std::string(": ") + std::strerror(err) : ""));
}

// RAII file descriptor.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void ReadExact(int fd, const std::string& path, uint64_t offset, void* dst, uint64_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    const ssize_t got = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      IoError(path, "read failed", errno);
    }
    if (got == 0) DataError(path, "unexpected end of file");
    p += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

void WriteExact(int fd, const std::string& path, const void* src, uint64_t n) {
  const auto* p = static_cast<const char*>(src);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    const ssize_t put = ::write(fd, p, chunk);
    if (put < 0) {
      if (errno == EINTR) continue;
      IoError(path, "write failed", errno);
    }
    p += put;
    n -= static_cast<uint64_t>(put);
  }
}

}  // namespace

bool SafetensorsDtype(const std::string& name, at::ScalarType* out) {
  static const std::pair<const char*, at::ScalarType> kTable[] = {
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble},
      {"I64", at::kLong},  {"I32", at::kInt},  {"U8", at::kByte},       {"BOOL", at::kBool}};
  for (const auto& [n, t] : kTable) {
    if (name == n) {
      *out = t;
      return true;
    }
  }
  return false;
}

const char* SafetensorsDtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return nullptr;
  }
}

SafetensorsContent LoadSafetensors(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) IoError(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) IoError(path, "cannot stat", errno);
  const auto fileSize = static_cast<uint64_t>(st.st_size);
  if (fileSize < 8) DataError(path, "too short (" + std::to_string(fileSize) + " bytes) for the 8-byte header length");

  uint8_t lenBytes[8];
  ReadExact(f.fd, path, 0, lenBytes, 8);
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; i--) headerLen = (headerLen << 8) | lenBytes[i];
  if (headerLen > kSafetensorsMaxHeaderBytes) {
    DataError(path, "header length " + std::to_string(headerLen) + " exceeds the limit of 100 MiB (" +
                        std::to_string(kSafetensorsMaxHeaderBytes) + " bytes)");
  }
  if (headerLen > fileSize - 8) {
    DataError(path, "header length " + std::to_string(headerLen) + " runs past the end of the " +
                        std::to_string(fileSize) + "-byte file");
  }
  std::string headerText(headerLen, '\0');
  ReadExact(f.fd, path, 8, headerText.data(), headerLen);
  // Counted before parsing: the parser's tree costs ~100 bytes per value.
  const JsonCounts counts = CountJson(headerText);
  if (counts.topLevelMembers > kSafetensorsMaxTensors + 1) {
    DataError(path, "the header has " + std::to_string(counts.topLevelMembers) + " entries, over the limit of " +
                        std::to_string(kSafetensorsMaxTensors) + " tensors");
  }
  if (counts.separators > kSafetensorsMaxJsonSeparators) {
    DataError(path, "the header has " + std::to_string(counts.separators) + " JSON separators, over the limit of " +
                        std::to_string(kSafetensorsMaxJsonSeparators) + " (20 per tensor)");
  }
  JsonValue header;
  try {
    header = ParseJson(headerText);
  } catch (const std::runtime_error& e) {
    DataError(path, std::string("header: ") + e.what());
  }
  headerText.clear();
  headerText.shrink_to_fit();
  if (header.type != JsonValue::Type::Object) DataError(path, "header is not a JSON object");

  const uint64_t dataStart = 8 + headerLen;
  const uint64_t dataSize = fileSize - dataStart;
  struct Entry {
    const std::string* name;
    at::ScalarType type;
    std::vector<int64_t> sizes;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  SafetensorsContent content;
  std::unordered_set<std::string> seen;
  for (const auto& [name, entry] : header.members) {
    if (!seen.insert(name).second) DataError(path, "key '" + name + "' appears twice in the header");
    if (name == "__metadata__") {
      if (entry.type != JsonValue::Type::Object) DataError(path, "'__metadata__' must be an object of strings");
      for (const auto& [k, v] : entry.members) {
        if (v.type != JsonValue::Type::String) DataError(path, "'__metadata__." + k + "' must be a string");
        content.metadata.emplace_back(k, v.text);
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (entry.type != JsonValue::Type::Object) DataError(path, where + ": entry must be an object");
    const JsonValue* dtype = entry.Find("dtype");
    const JsonValue* shape = entry.Find("shape");
    const JsonValue* offsets = entry.Find("data_offsets");
    if (!dtype || dtype->type != JsonValue::Type::String) DataError(path, where + ": missing or non-string 'dtype'");
    at::ScalarType type{};
    if (!SafetensorsDtype(dtype->text, &type)) {
      DataError(path, where + ": unsupported dtype '" + dtype->text +
                          "' (supported: F32, F16, BF16, F64, I64, I32, U8, BOOL)");
    }
    if (!shape || shape->type != JsonValue::Type::Array) DataError(path, where + ": missing or non-array 'shape'");
    std::vector<int64_t> sizes;
    uint64_t numel = 1;
    for (const JsonValue& d : shape->items) {
      int64_t v = -1;
      if (!d.AsInt64(&v) || v < 0) DataError(path, where + ": 'shape' must hold non-negative integers");
      sizes.push_back(v);
      if (v != 0 && numel > (uint64_t{1} << 62) / static_cast<uint64_t>(v))
        DataError(path, where + ": 'shape' is too large");
      numel *= static_cast<uint64_t>(v);
    }
    if (!offsets || offsets->type != JsonValue::Type::Array || offsets->items.size() != 2) {
      DataError(path, where + ": 'data_offsets' must be [begin, end]");
    }
    int64_t begin = -1, end = -1;
    if (!offsets->items[0].AsInt64(&begin) || !offsets->items[1].AsInt64(&end) || begin < 0 || end < begin) {
      DataError(path, where + ": 'data_offsets' must be integers with 0 <= begin <= end");
    }
    if (static_cast<uint64_t>(end) > dataSize) {
      DataError(path, where + ": 'data_offsets' end " + std::to_string(end) + " is past the data section (" +
                          std::to_string(dataSize) + " bytes)");
    }
    const uint64_t nbytes = numel * c10::elementSize(type);
    if (static_cast<uint64_t>(end - begin) != nbytes) {
      DataError(path, where + ": 'data_offsets' span " + std::to_string(end - begin) + " bytes but dtype " +
                          dtype->text + " and shape " + c10::str(at::IntArrayRef(sizes)) + " need " +
                          std::to_string(nbytes));
    }
    entries.push_back({&name, type, std::move(sizes), static_cast<uint64_t>(begin), static_cast<uint64_t>(end)});
  }

  // The entries must tile [0, dataSize) exactly, like the reference reader requires; checked before allocating.
  std::vector<const Entry*> byOffset;
  byOffset.reserve(entries.size());
  for (const Entry& e : entries) byOffset.push_back(&e);
  std::stable_sort(byOffset.begin(), byOffset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  for (const Entry* e : byOffset) {
    if (e->begin != covered) {
      DataError(path, "tensor '" + *e->name + "' starts at data offset " + std::to_string(e->begin) +
                          (e->begin < covered
                               ? " and overlaps the previous entry (which ends at " + std::to_string(covered) + ")"
                               : " and leaves a gap (the previous entry ends at " + std::to_string(covered) + ")"));
    }
    covered = e->end;
  }
  if (covered != dataSize) {
    DataError(path, "the header describes " + std::to_string(covered) + " data bytes but the file has " +
                        std::to_string(dataSize));
  }

  content.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    at::Tensor t = at::empty(e.sizes, at::TensorOptions().dtype(e.type));
    if (e.end > e.begin) ReadExact(f.fd, path, dataStart + e.begin, t.data_ptr(), e.end - e.begin);
    content.tensors.push_back({*e.name, t});
  }
  return content;
}

void SaveSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors, const Metadata& metadata) {
  std::unordered_set<std::string> seen;
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); i++) {
      header += (i ? "," : "") + JsonQuote(metadata[i].first) + ":" + JsonQuote(metadata[i].second);
    }
    header += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const NamedTensor& nt : tensors) {
    Require(!nt.name.empty(), "ARGUMENT_ERROR", "saveSafetensors " + path + ": a tensor name is empty");
    Require(nt.name != "__metadata__", "ARGUMENT_ERROR", "saveSafetensors " + path + ": '__metadata__' is reserved");
    Require(seen.insert(nt.name).second, "ARGUMENT_ERROR",
            "saveSafetensors " + path + ": name '" + nt.name + "' is given twice");
    Require(nt.tensor.defined(), "ARGUMENT_ERROR",
            "saveSafetensors " + path + ": tensor '" + nt.name + "' is undefined");
    const char* dtype = SafetensorsDtypeName(nt.tensor.scalar_type());
    Require(dtype != nullptr, "ARGUMENT_ERROR",
            "saveSafetensors " + path + ": tensor '" + nt.name + "' has unsupported dtype " +
                std::string(c10::toString(nt.tensor.scalar_type())));
    at::Tensor t = nt.tensor.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header += std::string(first ? "" : ",") + JsonQuote(nt.name) + ":{\"dtype\":\"" + dtype + "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); d++) header += (d ? "," : "") + std::to_string(t.size(d));
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    first = false;
    offset += nbytes;
    data.push_back(t);
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';

  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd < 0) IoError(path, "cannot create " + tmp, errno);
  try {
    uint8_t lenBytes[8];
    uint64_t len = header.size();
    for (int i = 0; i < 8; i++) lenBytes[i] = static_cast<uint8_t>((len >> (8 * i)) & 0xFF);
    WriteExact(f.fd, path, lenBytes, 8);
    WriteExact(f.fd, path, header.data(), header.size());
    for (const at::Tensor& t : data) {
      const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
      if (nbytes > 0) WriteExact(f.fd, path, t.data_ptr(), nbytes);
    }
    if (::fsync(f.fd) != 0) IoError(path, "fsync failed", errno);
    const int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) IoError(path, "close failed", errno);
    if (::rename(tmp.c_str(), path.c_str()) != 0) IoError(path, "cannot rename " + tmp + " into place", errno);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace ctclip::io
