import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_ANDROID: _ClassVar[Platform]
    PLATFORM_IOS: _ClassVar[Platform]

class InstallerClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTALLER_CLASS_UNSPECIFIED: _ClassVar[InstallerClass]
    INSTALLER_CLASS_OFFICIAL_STORE: _ClassVar[InstallerClass]
    INSTALLER_CLASS_OEM_STORE: _ClassVar[InstallerClass]
    INSTALLER_CLASS_THIRD_PARTY_STORE: _ClassVar[InstallerClass]
    INSTALLER_CLASS_PACKAGE_INSTALLER: _ClassVar[InstallerClass]
    INSTALLER_CLASS_NONE: _ClassVar[InstallerClass]

class LocationSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCATION_SOURCE_UNSPECIFIED: _ClassVar[LocationSource]
    LOCATION_SOURCE_GPS: _ClassVar[LocationSource]
    LOCATION_SOURCE_NETWORK: _ClassVar[LocationSource]
    LOCATION_SOURCE_FUSED: _ClassVar[LocationSource]
    LOCATION_SOURCE_IP: _ClassVar[LocationSource]
PLATFORM_UNSPECIFIED: Platform
PLATFORM_ANDROID: Platform
PLATFORM_IOS: Platform
INSTALLER_CLASS_UNSPECIFIED: InstallerClass
INSTALLER_CLASS_OFFICIAL_STORE: InstallerClass
INSTALLER_CLASS_OEM_STORE: InstallerClass
INSTALLER_CLASS_THIRD_PARTY_STORE: InstallerClass
INSTALLER_CLASS_PACKAGE_INSTALLER: InstallerClass
INSTALLER_CLASS_NONE: InstallerClass
LOCATION_SOURCE_UNSPECIFIED: LocationSource
LOCATION_SOURCE_GPS: LocationSource
LOCATION_SOURCE_NETWORK: LocationSource
LOCATION_SOURCE_FUSED: LocationSource
LOCATION_SOURCE_IP: LocationSource

class DeviceInfo(_message.Message):
    __slots__ = ("platform", "os_version", "manufacturer", "model")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    platform: Platform
    os_version: str
    manufacturer: str
    model: str
    def __init__(self, platform: _Optional[_Union[Platform, str]] = ..., os_version: _Optional[str] = ..., manufacturer: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class BankAppSelfCheck(_message.Message):
    __slots__ = ("package_name", "version_name", "version_code", "signing_cert_sha256", "installer_package", "installer_class")
    PACKAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERT_SHA256_FIELD_NUMBER: _ClassVar[int]
    INSTALLER_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    INSTALLER_CLASS_FIELD_NUMBER: _ClassVar[int]
    package_name: str
    version_name: str
    version_code: int
    signing_cert_sha256: str
    installer_package: str
    installer_class: InstallerClass
    def __init__(self, package_name: _Optional[str] = ..., version_name: _Optional[str] = ..., version_code: _Optional[int] = ..., signing_cert_sha256: _Optional[str] = ..., installer_package: _Optional[str] = ..., installer_class: _Optional[_Union[InstallerClass, str]] = ...) -> None: ...

class DeviceIntegrity(_message.Message):
    __slots__ = ("rooted", "emulator", "hooking_framework", "debugger_attached", "developer_mode", "adb_enabled", "app_tampered", "untrusted_installer", "mock_location")
    ROOTED_FIELD_NUMBER: _ClassVar[int]
    EMULATOR_FIELD_NUMBER: _ClassVar[int]
    HOOKING_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    DEBUGGER_ATTACHED_FIELD_NUMBER: _ClassVar[int]
    DEVELOPER_MODE_FIELD_NUMBER: _ClassVar[int]
    ADB_ENABLED_FIELD_NUMBER: _ClassVar[int]
    APP_TAMPERED_FIELD_NUMBER: _ClassVar[int]
    UNTRUSTED_INSTALLER_FIELD_NUMBER: _ClassVar[int]
    MOCK_LOCATION_FIELD_NUMBER: _ClassVar[int]
    rooted: bool
    emulator: bool
    hooking_framework: bool
    debugger_attached: bool
    developer_mode: bool
    adb_enabled: bool
    app_tampered: bool
    untrusted_installer: bool
    mock_location: bool
    def __init__(self, rooted: _Optional[bool] = ..., emulator: _Optional[bool] = ..., hooking_framework: _Optional[bool] = ..., debugger_attached: _Optional[bool] = ..., developer_mode: _Optional[bool] = ..., adb_enabled: _Optional[bool] = ..., app_tampered: _Optional[bool] = ..., untrusted_installer: _Optional[bool] = ..., mock_location: _Optional[bool] = ...) -> None: ...

class InstalledApp(_message.Message):
    __slots__ = ("package_name", "label", "version_name", "version_code", "installer_package", "installer_class", "apk_sha256", "signing_cert_sha256", "signing_cert_sha1", "system_app", "first_install_time", "last_update_time", "granted_permissions", "accessibility_service_enabled", "device_admin", "draw_over_apps", "running", "foreground")
    PACKAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_CODE_FIELD_NUMBER: _ClassVar[int]
    INSTALLER_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    INSTALLER_CLASS_FIELD_NUMBER: _ClassVar[int]
    APK_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERT_SHA1_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_APP_FIELD_NUMBER: _ClassVar[int]
    FIRST_INSTALL_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANTED_PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    ACCESSIBILITY_SERVICE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ADMIN_FIELD_NUMBER: _ClassVar[int]
    DRAW_OVER_APPS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FOREGROUND_FIELD_NUMBER: _ClassVar[int]
    package_name: str
    label: str
    version_name: str
    version_code: int
    installer_package: str
    installer_class: InstallerClass
    apk_sha256: str
    signing_cert_sha256: str
    signing_cert_sha1: str
    system_app: bool
    first_install_time: _timestamp_pb2.Timestamp
    last_update_time: _timestamp_pb2.Timestamp
    granted_permissions: _containers.RepeatedScalarFieldContainer[str]
    accessibility_service_enabled: bool
    device_admin: bool
    draw_over_apps: bool
    running: bool
    foreground: bool
    def __init__(self, package_name: _Optional[str] = ..., label: _Optional[str] = ..., version_name: _Optional[str] = ..., version_code: _Optional[int] = ..., installer_package: _Optional[str] = ..., installer_class: _Optional[_Union[InstallerClass, str]] = ..., apk_sha256: _Optional[str] = ..., signing_cert_sha256: _Optional[str] = ..., signing_cert_sha1: _Optional[str] = ..., system_app: _Optional[bool] = ..., first_install_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granted_permissions: _Optional[_Iterable[str]] = ..., accessibility_service_enabled: _Optional[bool] = ..., device_admin: _Optional[bool] = ..., draw_over_apps: _Optional[bool] = ..., running: _Optional[bool] = ..., foreground: _Optional[bool] = ...) -> None: ...

class ScreenState(_message.Message):
    __slots__ = ("screen_sharing", "screen_recording", "remote_input")
    SCREEN_SHARING_FIELD_NUMBER: _ClassVar[int]
    SCREEN_RECORDING_FIELD_NUMBER: _ClassVar[int]
    REMOTE_INPUT_FIELD_NUMBER: _ClassVar[int]
    screen_sharing: bool
    screen_recording: bool
    remote_input: bool
    def __init__(self, screen_sharing: _Optional[bool] = ..., screen_recording: _Optional[bool] = ..., remote_input: _Optional[bool] = ...) -> None: ...

class CallState(_message.Message):
    __slots__ = ("active_call", "started_at", "caller_in_contacts")
    ACTIVE_CALL_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CALLER_IN_CONTACTS_FIELD_NUMBER: _ClassVar[int]
    active_call: bool
    started_at: _timestamp_pb2.Timestamp
    caller_in_contacts: bool
    def __init__(self, active_call: _Optional[bool] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., caller_in_contacts: _Optional[bool] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("latitude", "longitude", "accuracy_meters", "source", "country_code")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_METERS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    accuracy_meters: float
    source: LocationSource
    country_code: str
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., accuracy_meters: _Optional[float] = ..., source: _Optional[_Union[LocationSource, str]] = ..., country_code: _Optional[str] = ...) -> None: ...

class NetworkState(_message.Message):
    __slots__ = ("vpn_active", "carrier", "sim_changed")
    VPN_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    SIM_CHANGED_FIELD_NUMBER: _ClassVar[int]
    vpn_active: bool
    carrier: str
    sim_changed: bool
    def __init__(self, vpn_active: _Optional[bool] = ..., carrier: _Optional[str] = ..., sim_changed: _Optional[bool] = ...) -> None: ...

class AttestationSummary(_message.Message):
    __slots__ = ("provider", "meets_basic_integrity", "meets_device_integrity", "meets_strong_integrity", "app_recognized", "evaluated_at")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MEETS_BASIC_INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    MEETS_DEVICE_INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    MEETS_STRONG_INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    APP_RECOGNIZED_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    provider: str
    meets_basic_integrity: bool
    meets_device_integrity: bool
    meets_strong_integrity: bool
    app_recognized: bool
    evaluated_at: _timestamp_pb2.Timestamp
    def __init__(self, provider: _Optional[str] = ..., meets_basic_integrity: _Optional[bool] = ..., meets_device_integrity: _Optional[bool] = ..., meets_strong_integrity: _Optional[bool] = ..., app_recognized: _Optional[bool] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AppActivity(_message.Message):
    __slots__ = ("running_packages", "foreground_packages")
    RUNNING_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    FOREGROUND_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    running_packages: _containers.RepeatedScalarFieldContainer[str]
    foreground_packages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, running_packages: _Optional[_Iterable[str]] = ..., foreground_packages: _Optional[_Iterable[str]] = ...) -> None: ...

class LoginTelemetry(_message.Message):
    __slots__ = ("customer_id", "device_id", "session_id", "collected_at", "nonce", "device", "bank_app", "integrity", "installed_apps", "screen", "call", "location", "client_ip", "network", "attestation", "inventory_digest", "app_activity")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BANK_APP_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_APPS_FIELD_NUMBER: _ClassVar[int]
    SCREEN_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    APP_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    device_id: str
    session_id: str
    collected_at: _timestamp_pb2.Timestamp
    nonce: str
    device: DeviceInfo
    bank_app: BankAppSelfCheck
    integrity: DeviceIntegrity
    installed_apps: _containers.RepeatedCompositeFieldContainer[InstalledApp]
    screen: ScreenState
    call: CallState
    location: Location
    client_ip: str
    network: NetworkState
    attestation: AttestationSummary
    inventory_digest: str
    app_activity: AppActivity
    def __init__(self, customer_id: _Optional[str] = ..., device_id: _Optional[str] = ..., session_id: _Optional[str] = ..., collected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nonce: _Optional[str] = ..., device: _Optional[_Union[DeviceInfo, _Mapping]] = ..., bank_app: _Optional[_Union[BankAppSelfCheck, _Mapping]] = ..., integrity: _Optional[_Union[DeviceIntegrity, _Mapping]] = ..., installed_apps: _Optional[_Iterable[_Union[InstalledApp, _Mapping]]] = ..., screen: _Optional[_Union[ScreenState, _Mapping]] = ..., call: _Optional[_Union[CallState, _Mapping]] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., client_ip: _Optional[str] = ..., network: _Optional[_Union[NetworkState, _Mapping]] = ..., attestation: _Optional[_Union[AttestationSummary, _Mapping]] = ..., inventory_digest: _Optional[str] = ..., app_activity: _Optional[_Union[AppActivity, _Mapping]] = ...) -> None: ...
