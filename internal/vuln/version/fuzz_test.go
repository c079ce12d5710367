package version

import "testing"

var schemes = []Scheme{Debian, Alpine, SemVer, Generic}

func FuzzCompare(f *testing.F) {
	for _, seed := range [][2]string{
		{"1.0~rc1", "1.0"}, {"1:0.1", "2.0"}, {"2.30-1ubuntu1", "2.30-1ubuntu1.1"},
		{"1.2.3_rc1", "1.2.3-r1"}, {"1.2.4_git20230717-r5", "1.2.4~ab-r3"},
		{"v1.2.3-alpha.1+b", "1.2.3"}, {"0.0.0-20220412211240-33da011f77ad", "1.18.0-0"},
		{"1.0rc1", "1.0.0"}, {"", "~"}, {"1.010", "1.09"},
	} {
		for i := range schemes {
			f.Add(uint8(i), seed[0], seed[1])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, a, b string) {
		s := schemes[int(which)%len(schemes)]
		ab, errAB := Compare(s, a, b)
		ba, errBA := Compare(s, b, a)
		if (errAB == nil) != (errBA == nil) {
			t.Fatalf("Compare(%s) fails one way only: %v / %v", s, errAB, errBA)
		}
		if errAB == nil && ab != -ba {
			t.Fatalf("Compare(%s, %q, %q) = %d but reversed = %d", s, a, b, ab, ba)
		}
		if ab < -1 || ab > 1 {
			t.Fatalf("Compare(%s, %q, %q) = %d, want -1, 0 or 1", s, a, b, ab)
		}
		for _, v := range []string{a, b} {
			c, err := Compare(s, v, v)
			if (err == nil) != (Valid(s, v) == nil) {
				t.Fatalf("Compare(%s, %q, itself) error %v disagrees with Valid", s, v, err)
			}
			if err == nil && c != 0 {
				t.Fatalf("Compare(%s, %q, itself) = %d", s, v, c)
			}
		}
	})
}
