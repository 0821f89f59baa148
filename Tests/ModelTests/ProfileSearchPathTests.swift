import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// Where a profile name is looked up, in order.
@Suite("profile search path")
struct ProfileSearchPathTests {
    @Test("names are looked up in $CTTUNE_PROFILE_PATH, then ROOT/etc/cttune/profiles, then the installed directory, then the built-ins")
    func order() throws {
        let catalog = ProfileCatalog.standard(
            root: SystemRoot(base: "/image"), environment: ["CTTUNE_PROFILE_PATH": "/a:/b"],
            installedDirectory: "/opt/cttune/share/cttune/profiles")
        #expect(catalog.searchDirectories == ["/a", "/b", "/image/etc/cttune/profiles", "/opt/cttune/share/cttune/profiles"])
        #expect(
            ProfileCatalog.standard(root: .live, environment: [:], installedDirectory: nil).searchDirectories == ["/etc/cttune/profiles"])
    }

    @Test("a build in the source tree has no installed profile directory (nothing at .build/…/share/cttune/profiles)")
    func noneInSourceTree() {
        #expect(ProfileCatalog.installedProfilesDirectory == nil)
    }
}
