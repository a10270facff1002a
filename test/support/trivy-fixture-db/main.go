// Command trivy-fixture-db writes a trivy vulnerability database (schema 2, the format trivy-db's
// own build writes) holding one real advisory: CVE-2023-45853 for zlib in Debian 12. The tests
// scan images with it, offline, so trivy's own matching runs against a known answer.
//
//	trivy-fixture-db <cache-dir>   writes <cache-dir>/db/trivy.db and <cache-dir>/db/metadata.json
//
// The records are written the way trivy-db builds them: the Debian source's advisory detail and
// vulnerability details per source, then the build's optimize step (advisories copied into the
// "debian 12" bucket, details merged into the "vulnerability" bucket) and its cleanup.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/bucket"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
)

const (
	vulnID = "CVE-2023-45853"
	// Debian matches by source package; the binary package in the images is zlib1g
	srcPackage     = "zlib"
	nvdDescription = "MiniZip in zlib through 1.3 has an integer overflow and resultant heap-based buffer overflow " +
		"in zipOpenNewFileInZip4_64 via a long filename, comment, or extra field. NOTE: MiniZip is not a supported " +
		"part of the zlib product. NOTE: pyminizip through 0.2.6 is also vulnerable because it bundles an affected " +
		"zlib version, and exposes the applicable MiniZip code through its compress API."
	// the Debian security tracker's description (trivy-db takes it as the title)
	debianDescription = "MiniZip in zlib through 1.3 has an integer overflow and resultant heap-based buffer overflow " +
		"in zipOpenNewFileInZip4_64 via a long filename, comment, or extra field. NOTE: MiniZip is not a supported part of the zlib product."
)

var (
	// what trivy-db's Debian source records for a data source
	debianSource = types.DataSource{
		ID:   vulnerability.Debian,
		Name: "Debian Security Tracker",
		URL:  "https://salsa.debian.org/security-tracker-team/security-tracker",
	}
	// bookworm: <ignored> (minizip is not built from src:zlib in bookworm; Debian bug 1054290), no
	// fixed version, no urgency assigned: trivy-db's Debian source stores that as will_not_fix,
	// severity unknown, and trivy takes the severity from NVD
	advisory = types.Advisory{Status: types.StatusWillNotFix}
	nvd      = types.VulnerabilityDetail{
		ID:           vulnID,
		CvssScoreV3:  9.8,
		CvssVectorV3: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		SeverityV3:   types.SeverityCritical,
		CweIDs:       []string{"CWE-190"},
		Description:  nvdDescription,
		References: []string{
			"https://github.com/madler/zlib/pull/843",
			"https://github.com/madler/zlib/blob/ac8f12c97d1afd9bafa9c710f827d40a407d3266/contrib/README.contrib#L1-L4",
			"https://chromium.googlesource.com/chromium/src/+/d709fb23806858847131027da95ef4c548813356",
			"https://chromium.googlesource.com/chromium/src/+/de29dd6c7151d3cd37cb4cf0036800ddfb1d8b61",
			"https://pypi.org/project/pyminizip/#history",
			"https://www.openwall.com/lists/oss-security/2023/10/20/9",
			"https://lists.debian.org/debian-lts-announce/2023/11/msg00026.html",
		},
	}
	debian = types.VulnerabilityDetail{
		Title: debianDescription,
		References: []string{
			"https://security-tracker.debian.org/tracker/CVE-2023-45853",
			"https://bugs.debian.org/1054290",
		},
	}
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: trivy-fixture-db <cache-dir>")
		os.Exit(2)
	}
	if err := write(filepath.Join(os.Args[1], "db")); err != nil {
		fmt.Fprintln(os.Stderr, "trivy-fixture-db:", err)
		os.Exit(1)
	}
}

func write(dbDir string) error {
	// a fresh file: an earlier database must not leave records behind
	for _, f := range []string{db.Path(dbDir), metadata.Path(dbDir)} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := db.Init(dbDir); err != nil {
		return err
	}
	defer db.Close()
	dbc := db.Config{}
	platform := bucket.NewDebian("12").Name() // "debian 12"

	// what trivy-db's Debian source puts (vulnsrc/debian defaultPut), plus the NVD detail
	err := dbc.BatchUpdate(func(tx *bolt.Tx) error {
		if err := dbc.PutAdvisoryDetail(tx, vulnID, srcPackage, []string{platform}, &advisory); err != nil {
			return err
		}
		if err := dbc.PutVulnerabilityDetail(tx, vulnID, vulnerability.Debian, debian); err != nil {
			return err
		}
		if err := dbc.PutVulnerabilityDetail(tx, vulnID, vulnerability.NVD, nvd); err != nil {
			return err
		}
		if err := dbc.PutVulnerabilityID(tx, vulnID); err != nil {
			return err
		}
		return dbc.PutDataSource(tx, platform, debianSource)
	})
	if err != nil {
		return err
	}

	// trivy-db's build: optimize (pkg/vulndb) ...
	vc := vulnerability.New(dbc)
	err = dbc.ForEachVulnerabilityID(func(tx *bolt.Tx, id string) error {
		details := vc.GetDetails(id)
		if vc.IsRejected(details) {
			return nil
		}
		if err := dbc.SaveAdvisoryDetails(tx, id); err != nil {
			return err
		}
		if len(details) == 0 {
			return nil
		}
		return dbc.PutVulnerability(tx, id, vc.Normalize(id, details))
	})
	if err != nil {
		return err
	}
	// ... and cleanup
	if err := dbc.DeleteVulnerabilityIDBucket(); err != nil {
		return err
	}
	if err := dbc.DeleteVulnerabilityDetailBucket(); err != nil {
		return err
	}
	if err := dbc.DeleteAdvisoryDetailBucket(); err != nil {
		return err
	}

	// check what trivy's Debian detector will read
	got, err := dbc.GetAdvisories(platform, srcPackage)
	if err != nil {
		return err
	}
	if len(got) != 1 || got[0].VulnerabilityID != vulnID || got[0].DataSource == nil || got[0].DataSource.ID != vulnerability.Debian {
		return fmt.Errorf("the written database does not hold the advisory as expected: %+v", got)
	}
	if v, err := dbc.GetVulnerability(vulnID); err != nil || v.VendorSeverity[vulnerability.NVD] != types.SeverityCritical {
		return fmt.Errorf("the written database does not hold %s's NVD severity: %+v %v", vulnID, v, err)
	}

	// DownloadedAt set, as after a download: trivy treats a zero one as a damaged database
	now := time.Now().UTC()
	return metadata.NewClient(dbDir).Update(metadata.Metadata{
		Version:      db.SchemaVersion,
		NextUpdate:   now.Add(24 * time.Hour),
		UpdatedAt:    now,
		DownloadedAt: now,
	})
}
