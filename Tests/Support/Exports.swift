// Tests and adapter authors import SwitchyardTesting and get the stand-ins with it.
@_exported import SwitchyardStandIns
