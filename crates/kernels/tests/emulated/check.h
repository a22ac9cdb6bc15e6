// Inputs and comparisons for the emulated kernel checks; `main` returns `failures()`.
#pragma once
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

inline std::mt19937& rng() {
    static std::mt19937 r(1);
    return r;
}

inline std::vector<float> random_values(size_t n, float scale = 1.0f) {
    std::uniform_real_distribution<float> d(-scale, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng());
    return v;
}

inline int& failures() {
    static int f = 0;
    return f;
}

// Checks |got - want| <= tol * (1 + |want|) everywhere (tol 0: bit for bit).
inline void expect_close(const char* what, const std::vector<float>& want,
                         const std::vector<float>& got, float tol) {
    for (size_t i = 0; i < want.size(); ++i) {
        bool ok = tol == 0.0f ? want[i] == got[i] || (std::isnan(want[i]) && std::isnan(got[i]))
                              : std::fabs(want[i] - got[i]) <= tol * (1.0f + std::fabs(want[i]));
        if (!ok) {
            std::printf("FAIL %s [%zu]: want %.9g, got %.9g\n", what, i, want[i], got[i]);
            ++failures();
            return;
        }
    }
    std::printf("ok %s (%zu values)\n", what, want.size());
}

inline void expect(const char* what, bool ok) {
    std::printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) ++failures();
}

inline unsigned blocks_for(size_t n) { return (unsigned)std::min<size_t>((n + 255) / 256, 4096); }

// Whether status word `word` reports element `index` holding `value` (`kiln_report`).
inline bool reported(unsigned long long word, unsigned long long index, float value) {
    unsigned long long key = ~word;
    unsigned bits;
    std::memcpy(&bits, &value, sizeof bits);
    return word != 0 && key >> 32 == index && (unsigned)key == bits;
}
