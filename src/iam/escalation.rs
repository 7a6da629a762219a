//! The published catalogue of AWS privilege-escalation paths, as data.

/// Where an escalation path is published. Facts, not code: the action sets are what these
/// public catalogues list.
const PROWLER: &str = "Prowler, iam/lib/privilege_escalation.py (Apache-2.0; itself from Rhino, Bishop Fox, pathfinding.cloud)";
const BOTH: &str = "Rhino Security Labs; Prowler";
const PATHFINDING: &str = "pathfinding.cloud (DataDog), as listed in Prowler's tests";
const PARLIAMENT: &str =
    "Parliament (Duo Labs), resource-policy privilege escalation (BSD-3-Clause)";

/// One privilege-escalation path: every action must be granted on any resource of its kind.
pub struct EscalationPath {
    pub name: &'static str,
    pub actions: &'static [&'static str],
    /// How the path turns these actions into more privilege.
    pub how: &'static str,
    pub source: &'static str,
}

const fn path(
    name: &'static str,
    actions: &'static [&'static str],
    how: &'static str,
    source: &'static str,
) -> EscalationPath {
    EscalationPath {
        name,
        actions,
        how,
        source,
    }
}

/// The public catalogue of AWS privilege-escalation paths, reduced to minimal sets: a published
/// path that is a superset of another (`AttachUserPolicy` + `CreateAccessKey`) is implied by it.
pub const ESCALATION_PATHS: &[EscalationPath] = &[
    path(
        "CreateNewPolicyVersion",
        &["iam:CreatePolicyVersion"],
        "write a new default version of a managed policy",
        BOTH,
    ),
    path(
        "SetExistingDefaultPolicyVersion",
        &["iam:SetDefaultPolicyVersion"],
        "switch a managed policy to a more permissive old version",
        BOTH,
    ),
    path(
        "CreateAccessKey",
        &["iam:CreateAccessKey"],
        "create access keys for a more privileged user",
        BOTH,
    ),
    path(
        "CreateLoginProfile",
        &["iam:CreateLoginProfile"],
        "give a privileged user a console password",
        BOTH,
    ),
    path(
        "UpdateLoginProfile",
        &["iam:UpdateLoginProfile"],
        "reset a privileged user's console password",
        BOTH,
    ),
    path(
        "AttachUserPolicy",
        &["iam:AttachUserPolicy"],
        "attach AdministratorAccess to a user",
        BOTH,
    ),
    path(
        "AttachGroupPolicy",
        &["iam:AttachGroupPolicy"],
        "attach AdministratorAccess to a group",
        BOTH,
    ),
    path(
        "AttachRolePolicy",
        &["iam:AttachRolePolicy"],
        "attach AdministratorAccess to a role",
        BOTH,
    ),
    path(
        "PutUserPolicy",
        &["iam:PutUserPolicy"],
        "write an inline admin policy on a user",
        BOTH,
    ),
    path(
        "PutGroupPolicy",
        &["iam:PutGroupPolicy"],
        "write an inline admin policy on a group",
        BOTH,
    ),
    path(
        "PutRolePolicy",
        &["iam:PutRolePolicy"],
        "write an inline admin policy on a role",
        BOTH,
    ),
    path(
        "AddUserToGroup",
        &["iam:AddUserToGroup"],
        "join a more privileged group",
        BOTH,
    ),
    path(
        "UpdateAssumeRolePolicy",
        &["iam:UpdateAssumeRolePolicy"],
        "rewrite a privileged role's trust policy to let oneself assume it",
        BOTH,
    ),
    path(
        "PassExistingRoleToNewEc2Instance",
        &["iam:PassRole", "ec2:RunInstances"],
        "launch an instance with a privileged role and use its credentials",
        BOTH,
    ),
    path(
        "PassRoleToSpotInstances",
        &["iam:PassRole", "ec2:RequestSpotInstances"],
        "request a spot instance with a privileged role",
        PROWLER,
    ),
    path(
        "ModifyInstanceUserData",
        &[
            "ec2:ModifyInstanceAttribute",
            "ec2:StopInstances",
            "ec2:StartInstances",
        ],
        "change the user data of an instance with a privileged role and restart it",
        PROWLER,
    ),
    path(
        "ModifyLaunchTemplate",
        &[
            "ec2:CreateLaunchTemplateVersion",
            "ec2:ModifyLaunchTemplate",
        ],
        "make a launch template used with a privileged role run one's code",
        PROWLER,
    ),
    path(
        "InstanceConnectSsh",
        &[
            "ec2-instance-connect:SendSSHPublicKey",
            "ec2:DescribeInstances",
        ],
        "log in to an instance with a privileged role",
        PROWLER,
    ),
    path(
        "PassExistingRoleToNewLambdaThenInvoke",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:InvokeFunction",
        ],
        "run code as a privileged role in a new function",
        BOTH,
    ),
    path(
        "PassExistingRoleToNewLambdaThenTriggerWithNewDynamo",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping",
        ],
        "run code as a privileged role in a new function triggered by an event source",
        BOTH,
    ),
    path(
        "PassRoleToNewLambdaWithPermission",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:AddPermission",
        ],
        "run code as a privileged role in a new function invoked through its resource policy",
        PROWLER,
    ),
    path(
        "EditExistingLambdaFunctionWithRole",
        &["lambda:UpdateFunctionCode"],
        "replace the code of a function that runs as a privileged role",
        BOTH,
    ),
    path(
        "EditExistingLambdaConfiguration",
        &["lambda:UpdateFunctionConfiguration"],
        "add a layer or environment to a function that runs as a privileged role",
        PROWLER,
    ),
    path(
        "PassExistingRoleToNewGlueDevEndpoint",
        &["iam:PassRole", "glue:CreateDevEndpoint"],
        "open a Glue dev endpoint with a privileged role",
        BOTH,
    ),
    path(
        "UpdateExistingGlueDevEndpoint",
        &["glue:UpdateDevEndpoint"],
        "add one's SSH key to a Glue dev endpoint with a privileged role",
        BOTH,
    ),
    path(
        "PassRoleToNewGlueJobRun",
        &["iam:PassRole", "glue:CreateJob", "glue:StartJobRun"],
        "run a Glue job as a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToNewGlueJobTrigger",
        &["iam:PassRole", "glue:CreateJob", "glue:CreateTrigger"],
        "trigger a Glue job that runs as a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToUpdatedGlueJobRun",
        &["iam:PassRole", "glue:UpdateJob", "glue:StartJobRun"],
        "point a Glue job at a privileged role and run it",
        PROWLER,
    ),
    path(
        "PassRoleToUpdatedGlueJobTrigger",
        &["iam:PassRole", "glue:UpdateJob", "glue:CreateTrigger"],
        "point a Glue job at a privileged role and trigger it",
        PROWLER,
    ),
    path(
        "PassExistingRoleToCloudFormation",
        &["iam:PassRole", "cloudformation:CreateStack"],
        "create a stack whose service role is privileged",
        BOTH,
    ),
    path(
        "UpdateExistingCloudFormationStack",
        &["cloudformation:UpdateStack"],
        "change a stack whose service role is privileged",
        PROWLER,
    ),
    path(
        "PassRoleToNewStackSet",
        &[
            "iam:PassRole",
            "cloudformation:CreateStackSet",
            "cloudformation:CreateStackInstances",
        ],
        "deploy a stack set with a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToUpdatedStackSet",
        &["iam:PassRole", "cloudformation:UpdateStackSet"],
        "change a stack set to use a privileged role",
        PROWLER,
    ),
    path(
        "ExecuteCloudFormationChangeSet",
        &[
            "cloudformation:CreateChangeSet",
            "cloudformation:ExecuteChangeSet",
        ],
        "change a stack whose service role is privileged through a change set",
        PROWLER,
    ),
    path(
        "PassExistingRoleToNewDataPipeline",
        &[
            "iam:PassRole",
            "datapipeline:CreatePipeline",
            "datapipeline:PutPipelineDefinition",
        ],
        "run a data pipeline as a privileged role",
        BOTH,
    ),
    path(
        "PassRoleToNewCodeStarProject",
        &["iam:PassRole", "codestar:CreateProject"],
        "create a CodeStar project with a privileged role",
        PROWLER,
    ),
    path(
        "StartExistingCodeBuild",
        &["codebuild:StartBuild"],
        "start a build (with overridden commands) of a project with a privileged role",
        PROWLER,
    ),
    path(
        "StartExistingCodeBuildBatch",
        &["codebuild:StartBuildBatch"],
        "start a batch build of a project with a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToNewAutoScalingGroup",
        &[
            "iam:PassRole",
            "autoscaling:CreateAutoScalingGroup",
            "autoscaling:CreateLaunchConfiguration",
        ],
        "launch instances with a privileged role through Auto Scaling",
        PROWLER,
    ),
    path(
        "PassRoleToUpdatedAutoScalingGroup",
        &[
            "iam:PassRole",
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:CreateLaunchConfiguration",
        ],
        "make an Auto Scaling group launch instances with a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToNewEcsService",
        &[
            "iam:PassRole",
            "ecs:RegisterTaskDefinition",
            "ecs:CreateService",
        ],
        "run a task with a privileged role as a new ECS service",
        PROWLER,
    ),
    path(
        "PassRoleToEcsRunTask",
        &["iam:PassRole", "ecs:RunTask"],
        "run an ECS task with a privileged role",
        PROWLER,
    ),
    path(
        "EcsExecuteCommand",
        &["ecs:ExecuteCommand", "ecs:DescribeTasks"],
        "open a shell in a running task with a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToNewSageMakerNotebook",
        &["iam:PassRole", "sagemaker:CreateNotebookInstance"],
        "open a notebook with a privileged role",
        BOTH,
    ),
    path(
        "PassRoleToNewSageMakerTrainingJob",
        &["iam:PassRole", "sagemaker:CreateTrainingJob"],
        "run a training job as a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToNewSageMakerProcessingJob",
        &["iam:PassRole", "sagemaker:CreateProcessingJob"],
        "run a processing job as a privileged role",
        PROWLER,
    ),
    path(
        "SageMakerPresignedNotebookUrl",
        &["sagemaker:CreatePresignedNotebookInstanceUrl"],
        "open an existing notebook that has a privileged role",
        PROWLER,
    ),
    path(
        "SageMakerNotebookLifecycleConfig",
        &[
            "sagemaker:CreateNotebookInstanceLifecycleConfig",
            "sagemaker:StopNotebookInstance",
            "sagemaker:UpdateNotebookInstance",
            "sagemaker:StartNotebookInstance",
        ],
        "run one's script at start of a notebook with a privileged role",
        PROWLER,
    ),
    path(
        "SsmStartSession",
        &["ssm:StartSession"],
        "open a shell on any managed instance, with its instance role",
        PROWLER,
    ),
    path(
        "SsmSendCommand",
        &["ssm:SendCommand"],
        "run commands on any managed instance, with its instance role",
        PROWLER,
    ),
    path(
        "PassRoleToNewAppRunnerService",
        &["iam:PassRole", "apprunner:CreateService"],
        "run a service with a privileged instance role",
        PROWLER,
    ),
    path(
        "UpdateAppRunnerService",
        &["apprunner:UpdateService"],
        "change the code of a service with a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToNewAgentCoreInterpreter",
        &[
            "iam:PassRole",
            "bedrock-agentcore:CreateCodeInterpreter",
            "bedrock-agentcore:InvokeCodeInterpreter",
        ],
        "run code in a code interpreter with a privileged role",
        PROWLER,
    ),
    path(
        "AgentCoreInterpreterSession",
        &[
            "bedrock-agentcore:StartCodeInterpreterSession",
            "bedrock-agentcore:InvokeCodeInterpreter",
        ],
        "run code in an existing code interpreter with a privileged role",
        PROWLER,
    ),
    path(
        "PassRoleToEcsStartTask",
        &["iam:PassRole", "ecs:StartTask"],
        "start an ECS task with a privileged role",
        PATHFINDING,
    ),
    path(
        "SubmitBatchJob",
        &["batch:SubmitJob"],
        "submit a job to a job definition that runs as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewBraketJob",
        &["iam:PassRole", "braket:CreateJob"],
        "run a Braket job as a privileged role",
        PATHFINDING,
    ),
    path(
        "CodeDeployWithPrivilegedAgent",
        &[
            "codedeploy:CreateDeployment",
            "codedeploy:RegisterApplicationRevision",
            "codedeploy:GetDeploymentConfig",
        ],
        "deploy one's code to instances with a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToCognitoIdentityPool",
        &["iam:PassRole", "cognito-identity:SetIdentityPoolRoles"],
        "make an identity pool hand out a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewEmrCluster",
        &["iam:PassRole", "elasticmapreduce:RunJobFlow"],
        "start an EMR cluster with a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewEmrServerlessJob",
        &[
            "iam:PassRole",
            "emr-serverless:CreateApplication",
            "emr-serverless:StartJobRun",
        ],
        "run an EMR Serverless job as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewGameLiftFleet",
        &[
            "iam:PassRole",
            "gamelift:CreateBuild",
            "gamelift:CreateFleet",
            "gamelift:RequestUploadCredentials",
        ],
        "run a GameLift fleet with a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewGlueSession",
        &["iam:PassRole", "glue:CreateSession", "glue:RunStatement"],
        "run statements in a Glue session as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewImageBuilderImage",
        &[
            "iam:PassRole",
            "imagebuilder:CreateComponent",
            "imagebuilder:CreateImageRecipe",
            "imagebuilder:CreateInfrastructureConfiguration",
            "imagebuilder:CreateImage",
        ],
        "build an image on an instance with a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewKinesisAnalyticsApp",
        &[
            "iam:PassRole",
            "kinesisanalytics:CreateApplication",
            "kinesisanalytics:StartApplication",
        ],
        "run a Kinesis Data Analytics application as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewOmicsRun",
        &[
            "iam:PassRole",
            "omics:CreateWorkflow",
            "omics:StartRun",
            "s3:GetObject",
        ],
        "run a HealthOmics workflow as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewSchedule",
        &["iam:PassRole", "scheduler:CreateSchedule"],
        "schedule a target that runs as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewSsmAutomation",
        &[
            "iam:PassRole",
            "ssm:CreateDocument",
            "ssm:StartAutomationExecution",
        ],
        "run an automation document as a privileged role",
        PATHFINDING,
    ),
    path(
        "PassRoleToNewStateMachine",
        &[
            "iam:PassRole",
            "states:CreateStateMachine",
            "states:StartExecution",
        ],
        "run a state machine as a privileged role",
        PATHFINDING,
    ),
    path(
        "UpdateExistingStateMachine",
        &["states:UpdateStateMachine", "states:StartExecution"],
        "change and run a state machine that has a privileged role",
        PATHFINDING,
    ),
    path(
        "DeleteUserPermissionsBoundary",
        &["iam:DeleteUserPermissionsBoundary"],
        "remove the boundary that limits a user",
        PATHFINDING,
    ),
    path(
        "DeleteRolePermissionsBoundary",
        &["iam:DeleteRolePermissionsBoundary", "sts:AssumeRole"],
        "remove the boundary that limits a role, then assume it",
        PATHFINDING,
    ),
    path(
        "AttachPolicyToSsoPermissionSet",
        &["sso:AttachManagedPolicyToPermissionSet"],
        "attach AdministratorAccess to a permission set one is assigned",
        PATHFINDING,
    ),
    path(
        "PutInlinePolicyToSsoPermissionSet",
        &["sso:PutInlinePolicyToPermissionSet"],
        "write an admin inline policy on a permission set one is assigned",
        PATHFINDING,
    ),
    path(
        "AgentCoreRuntimeCommand",
        &["bedrock-agentcore:InvokeAgentRuntimeCommand"],
        "run commands in an agent runtime that has a privileged role",
        PROWLER,
    ),
    path(
        "AgentCoreBrowserSession",
        &[
            "bedrock-agentcore:StartBrowserSession",
            "bedrock-agentcore:ConnectBrowserAutomationStream",
        ],
        "drive a browser session that has a privileged role",
        PROWLER,
    ),
    path(
        "RewriteBucketPolicyToRead",
        &["s3:PutBucketPolicy", "s3:GetObject"],
        "rewrite any bucket's policy to let oneself read it",
        PARLIAMENT,
    ),
    path(
        "RewriteBucketAclToRead",
        &["s3:PutBucketAcl", "s3:GetObject"],
        "rewrite any bucket's ACL to let oneself read it",
        PARLIAMENT,
    ),
];

/// The path of this name, if the catalogue has it.
pub fn escalation_path(name: &str) -> Option<&'static EscalationPath> {
    ESCALATION_PATHS.iter().find(|p| p.name == name)
}
