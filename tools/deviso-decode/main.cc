// deviso-decode: reads raw SMMUv3 / virtio-iommu records and translation tables from hex words
// (the command line, a file, or gdb `x/Ngx` output) and prints every field with the section of
// the specification that defines it; renders deviso's IOVA map dump as SVG. See
// docs/deviso-decode.md.

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "decode.h"

namespace {

using deviso::decode::Idrs;

constexpr const char* kUsage = R"(usage: deviso-decode KIND [options] [WORD...]

KIND (the words come from the command line, or -f FILE / '-' for stdin, as hex numbers; gdb
`x/Ngx` and `x/Nwx` output and QEMU `xp` output are accepted as they are):
  event          SMMUv3 event record: 4 quadwords or 8 words         (IHI0070 7.3)
  ste            SMMUv3 Stream Table Entry: 8 quadwords or 16 words  (IHI0070 5.2)
  cd             SMMUv3 Context Descriptor: 8 quadwords or 16 words  (IHI0070 5.4)
  cmd            SMMUv3 command: 2 quadwords or 4 words              (IHI0070 4)
  virtio-fault   virtio-iommu fault event: 3 quadwords or 6 words    (virtio 1.2 5.13.6.9)
  walk           a translation-table walk through a memory dump      (Arm ARM D8)
                   --root PA --iova ADDR --mem FILE [--base PA] [--stage 1|2]
                   [--granule 4k|16k|64k] [--tsz N] [--sl0 N] [--level N]
                   FILE: raw bytes at --base, or (without --base) gdb/QEMU text dump lines
                   "ADDR: qword qword ..." (--words 32 for x/Nwx output)
  map            render deviso's IOVA map dump (deviso/dump.h lines, e.g. a console log) as
                 SVG on stdout; fault reports in the same text are marked
                   [-f LOG] [--fault SID:IOVA]...

options for ste, cd and cmd (the ID registers the verdict is for; default: QEMU 7.2's):
  --idr0 V --idr1 V --idr3 V --idr5 V --aidr V
)";

bool ReadAll(const std::string& path, std::string* out) {
  if (path == "-") {
    *out = std::string(std::istreambuf_iterator<char>(std::cin), {});
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  *out = std::string(std::istreambuf_iterator<char>(in), {});
  return true;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "deviso-decode: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string kind = argv[1];
  Idrs idrs;
  deviso::decode::WalkConfig walk;
  std::string file, mem_file;
  bool have_base = false;
  uint64_t base = 0;
  unsigned word_bits = 64;
  std::vector<deviso::decode::MarkedFault> faults;
  std::string words_text;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](uint64_t* v) {
      if (i + 1 >= argc) return false;
      *v = std::stoull(argv[++i], nullptr, 0);
      return true;
    };
    uint64_t v = 0;
    if (a == "-f") {
      if (i + 1 >= argc) return Fail("-f needs a file");
      file = argv[++i];
    } else if (a == "-") {
      file = "-";
    } else if (a == "--idr0" || a == "--idr1" || a == "--idr3" || a == "--idr5" || a == "--aidr") {
      if (!value(&v)) return Fail(a + " needs a value");
      uint32_t* r = a == "--idr0"   ? &idrs.idr0
                    : a == "--idr1" ? &idrs.idr1
                    : a == "--idr3" ? &idrs.idr3
                    : a == "--idr5" ? &idrs.idr5
                                    : &idrs.aidr;
      *r = static_cast<uint32_t>(v);
    } else if (a == "--root") {
      if (!value(&walk.root)) return Fail("--root needs an address");
    } else if (a == "--iova") {
      if (!value(&walk.iova)) return Fail("--iova needs an address");
    } else if (a == "--mem") {
      if (i + 1 >= argc) return Fail("--mem needs a file");
      mem_file = argv[++i];
    } else if (a == "--base") {
      if (!value(&base)) return Fail("--base needs an address");
      have_base = true;
    } else if (a == "--stage") {
      if (!value(&v) || (v != 1 && v != 2)) return Fail("--stage 1 or 2");
      walk.stage = static_cast<unsigned>(v);
    } else if (a == "--granule") {
      if (i + 1 >= argc) return Fail("--granule 4k, 16k or 64k");
      const std::string g = argv[++i];
      walk.granule_shift = g == "4k" ? 12 : g == "16k" ? 14 : g == "64k" ? 16 : 0;
      if (walk.granule_shift == 0) return Fail("--granule 4k, 16k or 64k");
    } else if (a == "--tsz") {
      if (!value(&v) || v > 63) return Fail("--tsz needs 16..39");
      walk.tsz = static_cast<unsigned>(v);
    } else if (a == "--sl0") {
      if (!value(&v) || v > 3) return Fail("--sl0 needs 0..3");
      walk.sl0 = static_cast<unsigned>(v);
    } else if (a == "--level") {
      if (!value(&v) || v > 3) return Fail("--level needs 0..3");
      walk.start_level = static_cast<int>(v);
    } else if (a == "--words") {
      if (!value(&v) || (v != 32 && v != 64)) return Fail("--words 32 or 64");
      word_bits = static_cast<unsigned>(v);
    } else if (a == "--fault") {
      if (i + 1 >= argc) return Fail("--fault SID:IOVA");
      const std::string f = argv[++i];
      const size_t colon = f.find(':');
      if (colon == std::string::npos) return Fail("--fault SID:IOVA");
      deviso::decode::MarkedFault m;
      m.sid = static_cast<uint32_t>(std::stoul(f.substr(0, colon), nullptr, 0));
      m.iova = std::stoull(f.substr(colon + 1), nullptr, 0);
      faults.push_back(m);
    } else if (!a.empty() && a[0] == '-' && a.size() > 1 && a[1] == '-') {
      return Fail("unknown option " + a);
    } else {
      words_text += a + " ";
    }
  }
  std::string error;
  if (kind == "map") {
    std::string text;
    if (!ReadAll(file.empty() ? "-" : file, &text)) return Fail("cannot read " + file);
    std::optional<std::string> svg = deviso::decode::RenderMap(text, faults, &error);
    if (!svg) return Fail(error);
    std::fputs(svg->c_str(), stdout);
    return 0;
  }
  if (kind == "walk") {
    if (mem_file.empty()) return Fail("walk needs --mem FILE");
    std::string bytes;
    if (!ReadAll(mem_file, &bytes)) return Fail("cannot read " + mem_file);
    deviso::decode::MemoryImage memory;
    if (have_base) {
      memory.AddRaw(base, bytes);
    } else if (!memory.AddText(bytes, word_bits, &error)) {
      return Fail(mem_file + ": " + error);
    }
    std::fputs(deviso::decode::Walk(walk, memory).c_str(), stdout);
    return 0;
  }
  if (!file.empty()) {
    std::string text;
    if (!ReadAll(file, &text)) return Fail("cannot read " + file);
    words_text += "\n" + text;
  }
  std::optional<std::vector<uint64_t>> words = deviso::decode::ParseWords(words_text, &error);
  if (!words) return Fail(error);
  size_t qwords = 0;
  if (kind == "event") {
    qwords = 4;
  } else if (kind == "ste" || kind == "cd") {
    qwords = 8;
  } else if (kind == "cmd") {
    qwords = 2;
  } else if (kind == "virtio-fault") {
    qwords = 3;
  } else {
    return Fail("unknown kind '" + kind + "' (see deviso-decode --help)");
  }
  std::optional<std::vector<uint64_t>> q = deviso::decode::AsQwords(*words, qwords);
  if (!q) {
    return Fail(kind + " needs " + std::to_string(qwords) + " quadwords or " +
                std::to_string(2 * qwords) + " 32-bit words, got " + std::to_string(words->size()) +
                " words");
  }
  std::string out;
  if (kind == "event") out = deviso::decode::DecodeSmmuEvent(*q);
  if (kind == "ste") out = deviso::decode::DecodeSte(*q, idrs);
  if (kind == "cd") out = deviso::decode::DecodeCd(*q, idrs);
  if (kind == "cmd") out = deviso::decode::DecodeCommand(*q, idrs);
  if (kind == "virtio-fault") out = deviso::decode::DecodeVirtioFault(*q);
  std::fputs(out.c_str(), stdout);
  return 0;
}
